/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The order ucr_restore_image() sets an image's rings up in (order.c).
 */
#ifndef UCR_ORDER_H
#define UCR_ORDER_H

#include <stdbool.h>

#include "internal.h"

/* Beyond this many rings only the image's own order is tried. */
#define UCR_ORDER_MAX	7
/* The search gives up after planning this many buffers. */
#define UCR_ORDER_WORK	(1ULL << 22)

/*
 * The first order of @rings (@order[i]: the image index of the ring set up
 * i-th) in which every SQPOLL thread's first ring can start it and every
 * ring's buffer plans (share.c, pages.c; @existing: UCR_MEM_EXISTING)
 * succeed: 0, -ENOMEM, or -EOPNOTSUPP (no order does) or -E2BIG (the
 * search stopped short: UCR_ORDER_MAX, UCR_ORDER_WORK) with @order the
 * image's own order, in which the plans name what fails.
 */
int ucr_order_find(const struct ucr_ring *rings, unsigned int nr, bool existing,
		   unsigned int *order);
/*
 * @out[i] = @rings[@order[i]], with sq_share naming the first ring on its
 * thread in the new order. Shallow copies: the tables stay @rings'.
 */
void ucr_order_apply(const struct ucr_ring *rings, unsigned int nr, const unsigned int *order,
		     struct ucr_ring *out);

#endif /* UCR_ORDER_H */
