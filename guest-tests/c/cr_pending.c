// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a ring with history for uringcr to dump: after 1000 NOPs
 * (counters far from 0 and wrapped around the ring several times) it holds
 * 5 posted CQEs of which 2 are reaped, and 3 SQEs written and published in
 * sq.tail but not submitted. Kinds (argv[1]): empty (a fresh ring, nothing
 * done), plain, big (SQE128 | CQE32), sqpoll (no unsubmitted SQEs: the
 * thread takes them), defer (SINGLE_ISSUER | DEFER_TASKRUN). Prints every
 * pending entry as "expect" lines; after "go" checks the ring is as it was
 * and finishes the work: the 3 SQEs complete in order after the 3 CQEs.
 * test_uringcr.py::test_dump_pending checks the image against it.
 *
 *   cr_pending KIND resume DIR
 *
 * restores the image of such a ring into a new process and runs the same
 * continuation (test_uringcr_restore.py compares the "result" lines).
 */
#include <string.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

#define HISTORY		1000
#define POSTED		5
#define REAPED		2
#define UNSUBMITTED	3
#define CQE_BASE	0xc0de0000ULL
#define SQE_BASE	0x5e000000ULL

/*
 * The continuation, the same in the resumed original and in the restored
 * copy ("result" lines): the pending CQEs, then the unsubmitted SQEs in
 * order, then NOPs and an IOSQE_IO_DRAIN NOP (the restore must not have
 * disabled drains) whose user_data and counters continue the history.
 */
static enum t_exit finish(struct io_uring *ring, unsigned int cqes, unsigned int sqes)
{
	struct io_uring_sqe *sqe;
	unsigned int i;
	__u64 ud;
	int res;

	if (sqes && ring_submit(ring, sqes))
		return t_fail("submitting the unsubmitted SQEs");
	for (i = 0; i < cqes + sqes; i++) {
		__u64 want = i < cqes ? CQE_BASE + REAPED + i : SQE_BASE + i - cqes;

		res = result_cqe(ring, &ud);
		if (res < 0 || ud != want) {
			t_diag("completion %u: res %d user_data 0x%llx, want 0x%llx", i, res,
			       (unsigned long long)ud, (unsigned long long)want);
			return t_fail("the continuation after the dump");
		}
	}
	for (i = 0; i < 3; i++) {
		sqe = get_sqe(ring);
		if (!sqe)
			return t_fail("no SQE");
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 0xd000 + i);
		if (i == 2)
			sqe->flags |= IOSQE_IO_DRAIN;
		if (ring_submit(ring, 1) || result_cqe(ring, &ud) < 0 || ud != 0xd000 + i)
			return t_fail("NOPs and a drain after the dump");
	}
	result("sq_head=%u sq_tail=%u cq_head=%u cq_tail=%u", *ring->sq.khead, *ring->sq.ktail,
	       *ring->cq.khead, *ring->cq.ktail);
	return t_pass();
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "plain";
	unsigned int flags = 0, i, sqes = UNSUBMITTED;
	struct io_uring_params p;
	struct io_uring ring;
	struct ring_snap snap;
	struct io_uring_cqe *cqe;

	t_start("cr_pending", argc, argv);
	if (argc > 3 && !strcmp(argv[2], "resume")) {
		/* a new process: the ring from the image, then the same continuation */
		if (resume_ring(argv[3], 0, &ring))
			return t_fail("restoring the image");
		return finish(&ring, strcmp(kind, "empty") ? POSTED - REAPED : 0,
			      strcmp(kind, "sqpoll") && strcmp(kind, "empty") ? UNSUBMITTED : 0);
	}
	if (!strcmp(kind, "big"))
		flags = IORING_SETUP_SQE128 | IORING_SETUP_CQE32;
	else if (!strcmp(kind, "sqpoll"))
		flags = IORING_SETUP_SQPOLL;
	else if (!strcmp(kind, "defer"))
		flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	else if (strcmp(kind, "plain") && strcmp(kind, "empty"))
		return t_fail("kind is empty, plain, big, sqpoll or defer");
	if (ring_init(&ring, &p, 16, 64, flags, 1000))
		return t_fail("ring setup");
	expect_ring(kind, &ring, &p);

	if (strcmp(kind, "empty")) {
		if (run_nops(&ring, HISTORY, 0))
			return t_fail("history NOPs");
		for (i = 0; i < POSTED; i++) {
			struct io_uring_sqe *sqe = get_sqe(&ring);

			if (!sqe)
				return t_fail("no SQE");
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, CQE_BASE + i);
		}
		if (io_uring_submit_and_wait(&ring, POSTED) < 0)
			return t_fail("posting CQEs");
		for (i = 0; i < REAPED; i++) {
			if (io_uring_peek_cqe(&ring, &cqe))
				return t_fail("reaping");
			io_uring_cqe_seen(&ring, cqe);
		}
		if (!strcmp(kind, "sqpoll"))
			sqes = 0;
		for (i = 0; i < sqes; i++) {
			struct io_uring_sqe *sqe = get_sqe(&ring);

			if (!sqe)
				return t_fail("no SQE");
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, SQE_BASE + i);
			expect("sqe", "position=%u user_data=%llu opcode=%u", ring.sq.sqe_tail - 1,
			       SQE_BASE + i, IORING_OP_NOP);
		}
		/* publish them as io_uring_submit() would, without entering */
		io_uring_smp_store_release(ring.sq.ktail, ring.sq.sqe_tail);
		ring.sq.sqe_head = ring.sq.sqe_tail;
		for (i = REAPED; i < POSTED; i++)
			expect("cqe", "user_data=%llu res=0 flags=0", CQE_BASE + i);
	} else {
		sqes = 0;
	}
	snap_ring(&ring, &snap);
	expect_counters(kind, &snap);
	if (owner_wait())
		return t_fail("no go");
	if (!same_ring(&ring, &snap))
		return t_fail("the dump changed the ring");
	return finish(&ring, strcmp(kind, "empty") ? POSTED - REAPED : 0, sqes);
}
