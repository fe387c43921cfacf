/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ring set-up and bounded waits: every wait on a completion has a timeout
 * (scaled by t_tscale), so that a hang shows up as -ETIME, not as a helper
 * that never returns.
 */
#ifndef GUEST_RING_H
#define GUEST_RING_H

#include <stdbool.h>

#include <liburing.h>

/*
 * io_uring_queue_init_params() with @flags, a CQ of @cq_entries when not 0,
 * and, on an SQPOLL ring, a thread that goes idle after @sq_idle_ms (0: the
 * kernel's default). @p gets the parameters the kernel set up. 0 or -errno,
 * with a diagnostic.
 */
int ring_init(struct io_uring *ring, struct io_uring_params *p,
	      unsigned int entries, unsigned int cq_entries,
	      unsigned int flags, unsigned int sq_idle_ms);

/*
 * liburing 2.3 counts a new ring's SQEs from 0; the kernel counts from the
 * ring's SQ tail. Both are 0 on 6.12, not on the wrap test kernel
 * (kernel-patches/wrap/), whose rings start near 2^32: this makes
 * liburing count from the tail. ring_init() calls it; call it after any
 * other io_uring_queue_init*().
 */
void ring_sync(struct io_uring *ring);

/* ring_init() of a plain or SQPOLL ring (SQ thread idle after 20 ms) */
int ring_setup(struct io_uring *ring, unsigned int entries, bool sqpoll);

/*
 * io_uring_submit() for @n prepared SQEs: 0, or the error. On an SQPOLL
 * ring any count is success (liburing's count is an estimate there).
 */
int ring_submit(struct io_uring *ring, int n);

/* One completion within 15 s (scaled): its res, or -ETIME. */
int ring_wait_one(struct io_uring *ring, __u64 *user_data);

/* One IORING_OP_READ of @fd at offset 0: the CQE res, or -ETIME (a hang). */
int ring_read(struct io_uring *ring, int fd, char *buf, unsigned int len,
	      unsigned int sqe_flags);

/*
 * Submit the one prepared SQE and wait up to 20 s (scaled) for it: 0 with
 * its res in *@res, or the error (-ETIME: no completion).
 */
int ring_submit_wait(struct io_uring *ring, int *res);

/*
 * IORING_REGISTER_CLONE_BUFFERS (6.12; liburing 2.3 has no wrapper): @src's
 * whole buffer table into @dst, which has none. 0 or -errno.
 */
int ring_clone_buffers(struct io_uring *dst, struct io_uring *src);
/*
 * A ring of 8 entries set up with IORING_SETUP_ATTACH_WQ to @to, plus
 * @flags (IORING_SETUP_SQPOLL: it shares @to's SQ thread) and @idle_ms,
 * then ring_sync()ed. 0 or -1.
 */
int ring_attach(struct io_uring *ring, struct io_uring *to, unsigned int flags,
		unsigned int idle_ms);

/* Moves @ring's fd above @above (F_DUPFD_CLOEXEC, old fd closed). 0 or -1. */
int ring_fd_above(struct io_uring *ring, int above);

/* The SQPOLL threads of this process (tasks named "iou-sqp-*"), or -1. */
int ring_sq_threads(void);

#endif /* GUEST_RING_H */
