/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The restore's own pieces (restore.c, restore_bufs.c, replay.c): raw
 * io_uring system calls, the ring as the restore maps it for its own work,
 * and one ring's restore in progress.
 */
#ifndef UCR_RESTORE_H
#define UCR_RESTORE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uapi.h"

#include "internal.h"
#include "pages.h"

static inline int sys_setup(unsigned int entries, struct io_uring_params *p)
{
	return syscall(__NR_io_uring_setup, entries, p);
}

static inline int sys_enter(int fd, unsigned int submit, unsigned int wait,
			    unsigned int flags)
{
	return syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

static inline int sys_register(int fd, unsigned int op, const void *arg,
			       unsigned int nr)
{
	return syscall(__NR_io_uring_register, fd, op, arg, nr);
}

/* The restore's working view of the new ring (its own mappings). */
struct ucr_work {
	int fd;
	const struct io_uring_params *p;
	void *sq_ring, *cq_ring, *sqes;
	size_t sq_len, cq_len, sqes_len;
	uint32_t *sq_head, *sq_tail, *sq_array, *sq_dropped, *sq_flags;
	uint32_t *cq_head, *cq_tail, *cq_overflow, *cq_flags;
	void *cqes;
	uint32_t sqe_size, cqe_size;
};

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT		26
#endif

/* One ring's restore: what it works from, the step it is at, what to undo. */
struct rst {
	const struct ucr_image *img;
	const struct ucr_ring *r;
	unsigned int idx;		/* in the restore's order (order.c) */
	unsigned int part;		/* in the image as written: its parts' names */
	const struct ucr_restore_opts *o;
	struct ucr_restored *out;
	struct ucr_err *err;
	const char *step;
	struct ucr_work w;
	struct region *reg;	/* the memory this ring maps itself (pages.c) */
	unsigned int nr_reg;
	struct ucr_pages *pg;	/* what the rings restored before it mapped */
	struct ucr_share sh;	/* buffers shared with earlier rings */
	bool reg_ring, iowq;
	unsigned int iowq_old[2];
};

static inline int sysfail(struct rst *s, const char *what)
{
	return ucr_errf(s->err, -errno, "%s: %s", what, strerror(errno));
}

/*
 * restore_bufs.c: the buffers' memory planned and its addresses reserved
 * (before the setup); then mapped, filled and registered or cloned.
 */
int ucr_rst_reserve(struct rst *s);
int ucr_rst_buffers(struct rst *s);

/* Maps the ring @w->fd set up with @w->p anywhere, for the restore's use. */
int ucr_work_map(struct ucr_work *w, struct ucr_err *err);
void ucr_work_unmap(struct ucr_work *w);

/*
 * Moves the new ring's kernel counters (cached_sq_head, cached_cq_tail) to
 * the image's, leaving the CQ empty (replay.c). @allow_drop: the ring has
 * an SQ array, so SQ entries may be dropped to move the SQ head alone.
 */
int ucr_replay(struct ucr_work *w, const struct ucr_ring *r,
	       struct ucr_restore_stats *st, bool progress, struct ucr_err *err);

/*
 * What the replay costs (counters.c): NOPs, dropped entries and MSG_RING
 * posts that move a ring's SQ head and CQ tail from @from_sq, @from_cq to
 * @sq_head, @cq_tail, all modulo 2^32.
 */
void ucr_replay_plan(uint32_t from_sq, uint32_t from_cq, uint32_t sq_head,
		     uint32_t cq_tail, uint64_t *nops, uint64_t *drops, uint64_t *msgs);

#endif /* UCR_RESTORE_H */
