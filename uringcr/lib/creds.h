/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The restore of a ring's personalities (creds.c): each id of the image
 * registered again with the same credentials, and the ring's cyclic id
 * counter left where the image had it.
 */
#ifndef UCR_CREDS_H
#define UCR_CREDS_H

#include <stdint.h>

#include "internal.h"

/*
 * Registers @nr personalities (sorted by id, ids >= 1, < 65536) on the ring
 * @ring_fd, which must be new (no personality registered yet) and still
 * IORING_SETUP_R_DISABLED, so that each gets the same id and credentials
 * as in the image, and the ring's next id (ctx->pers_next) ends at
 * @pers_next. Adds the io_uring_register calls made to *calls (may be NULL).
 * All or nothing: on failure no personality is left registered.
 */
int ucr_pers_restore(int ring_fd, const struct ucr_pers_rec *pers, uint32_t nr,
		     uint32_t pers_next, uint64_t *calls, struct ucr_err *err);

#endif /* UCR_CREDS_H */
