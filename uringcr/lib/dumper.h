/* SPDX-License-Identifier: GPL-2.0 */
/* One dump's state, shared by dump.c, drain.c and refuse.c. Not installed. */
#ifndef UCR_DUMPER_H
#define UCR_DUMPER_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "target.h"

struct ucr_probe;
struct ucr_kcore;

struct dumper {
	const struct ucr_opts *o;
	struct ucr_report *rep;
	struct ucr_err *err;
	struct ucr_target t;
	struct ucr_freezer fz;
	struct ucr_probe *probe;
	struct ucr_image img;
	int *owner_fds;		/* ring fds in the owner */
	int *fds;		/* the dumper's copies */
	size_t nr;
	struct ucr_ring_rec *k0; /* each ring's record at the drain */
	struct ucr_kcore *kcore; /* for buffers whose mapping is gone */
	struct ucr_err kcore_err;
	uint64_t t_drain0, t_drain1;
};

/*
 * Waits until no ring has requests in flight (io_uring's own IOSQE_IO_DRAIN
 * condition), refusing "in-flight" when --drain-timeout passes (drain.c).
 */
int ucr_drain(struct dumper *d);

/* Everything in ring @r that an image cannot carry, as refusals (refuse.c). */
void ucr_refuse_ring(struct dumper *d, const struct ucr_ring *r);
/* What the rings share (buffers, SQ threads) that a restore cannot share again. */
int ucr_refuse_shared(struct dumper *d);

#endif /* UCR_DUMPER_H */
