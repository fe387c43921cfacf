// SPDX-License-Identifier: GPL-2.0
/*
 * Description: rings set up with IORING_SETUP_ATTACH_WQ. A is an SQPOLL
 * ring (idle 50 ms); B is an SQPOLL ring attached to A, so one SQ thread
 * serves both (its own idle, 20 ms); C is a plain ring attached to A (6.12
 * keeps the flag and checks only that wq_fd is a ring); D is an SQPOLL ring
 * attached to a ring that was closed after, so D has the flag and a thread
 * of its own. Each has run a few NOPs. "expect ring" lines give fd, flags,
 * idle and the image's sq_share (the index of the first ring on the same
 * SQ thread: 0, 0, -1, 3).
 * test_uringcr.py::test_dump_attached_rings checks the image against them.
 *
 * The continuation after "go": NOPs through every ring, then the number of
 * SQ threads ("iou-sqp-*") in the process: 2.
 *
 *   cr_sqshare resume DIR
 *
 * restores the four rings into a new process (ucr_restore_image(): B
 * attached to the restored A, D to a ring of the restore's own) and runs
 * the same continuation;
 * test_uringcr_restore.py::test_restore_attached_rings compares them.
 */
#include <stdio.h>
#include <string.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

#define NR_RINGS	4

static enum t_exit finish(struct io_uring *rings)
{
	int i, n;

	for (i = 0; i < NR_RINGS; i++) {
		int ret = run_nops(&rings[i], 3, 100 * (i + 1));

		result("ring=%d nops=%d", i, ret);
		if (ret)
			return t_fail("NOPs");
	}
	n = ring_sq_threads();
	result("sq_threads=%d", n);
	return n == 2 ? t_pass() : t_fail("not one SQ thread for A and B, one for D");
}

int main(int argc, char *argv[])
{
	struct io_uring rings[NR_RINGS];
	struct io_uring_params p;
	struct io_uring gone;
	int i;

	t_start("cr_sqshare", argc, argv);
	if (argc > 2 && !strcmp(argv[1], "resume")) {
		if (resume_rings(argv[2], NR_RINGS, rings))
			return t_fail("restoring the image");
		return finish(rings);
	}
	if (ring_init(&rings[0], &p, 8, 0, IORING_SETUP_SQPOLL, 50) ||
	    ring_attach(&rings[1], &rings[0], IORING_SETUP_SQPOLL, 20) ||
	    ring_attach(&rings[2], &rings[0], 0, 0) ||
	    ring_init(&gone, &p, 8, 0, IORING_SETUP_SQPOLL, 30) ||
	    ring_attach(&rings[3], &gone, IORING_SETUP_SQPOLL, 40))
		return t_fail("ring setup");
	io_uring_queue_exit(&gone);
	for (i = 0; i < NR_RINGS; i++) {
		if (run_nops(&rings[i], 2 + i, 10 * (i + 1)))
			return t_fail("NOPs");
	}
	expect("ring", "fd=%d flags=%u idle_ms=%d sq_share=0", rings[0].ring_fd,
	       rings[0].flags, 50);
	expect("ring", "fd=%d flags=%u idle_ms=%d sq_share=0", rings[1].ring_fd,
	       rings[1].flags, 20);
	expect("ring", "fd=%d flags=%u idle_ms=%d sq_share=-1", rings[2].ring_fd,
	       rings[2].flags, 0);
	expect("ring", "fd=%d flags=%u idle_ms=%d sq_share=3", rings[3].ring_fd,
	       rings[3].flags, 40);
	expect("threads", "sq=%d", ring_sq_threads());
	if (owner_wait())
		return t_fail("no go");
	return finish(rings);
}
