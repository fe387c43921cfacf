/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The FUSE gate: ->uring_lock held on purpose for as long as we like.
 *
 * A one-file FUSE file system served by a thread of this process. A page of
 * the file that is not in the page cache faults into a FUSE_READ, which the
 * server answers only when the gate is open. io_uring_register() copies its
 * argument in with ->uring_lock held, so a register call whose argument lies
 * on such a page holds the ring's lock until the gate opens. (This kernel
 * has no userfaultfd.) One gate per process.
 */
#ifndef GUEST_FUSE_GATE_H
#define GUEST_FUSE_GATE_H

#include <pthread.h>
#include <stdatomic.h>

/*
 * Mounts the file system in a private mount namespace (it goes away with
 * the process): 0, or -1 with the reason as a diagnostic (the caller skips:
 * no FUSE here). fuse_gate_stop() after either.
 */
int fuse_gate_start(void);
void fuse_gate_stop(void);

/* A register call holding a ring's ->uring_lock */
struct hold {
	int ring_fd;
	void *arg;
	pthread_t thr;
	int ret;
	atomic_bool returned;
};

/*
 * Start holding @ring_fd's ->uring_lock: 0 once an IORING_REGISTER_PROBE
 * waits for the FUSE_READ of a page never touched before (inside the lock),
 * -1 if it did not get there within 10 s (scaled).
 */
int hold_start(struct hold *h, int ring_fd);
/* Open the gate and let the register call finish: its result (0 for the probe). */
int hold_release(struct hold *h);

#endif /* GUEST_FUSE_GATE_H */
