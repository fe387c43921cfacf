// SPDX-License-Identifier: GPL-2.0
/*
 * Description: one IORING_OP_NOP round trip through io_uring_setup and
 * io_uring_enter. The user_data to submit is argv[1]; the completion must
 * carry res == 0 and the same user_data (a trailing tscale=F is ignored). Prints the CQE as a KTAP diagnostic
 * so the caller can check it independently.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "guest.h"

static enum t_exit nop_round_trip(struct io_uring *ring, __u64 user_data)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	enum t_exit res = T_EXIT_PASS;
	int ret;

	sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		t_diag("no free SQE");
		return T_EXIT_FAIL;
	}
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, user_data);

	ret = io_uring_submit_and_wait(ring, 1);
	if (ret != 1) {
		t_diag("io_uring_submit_and_wait: %d (%s)", ret, strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = io_uring_peek_cqe(ring, &cqe);
	if (ret) {
		t_diag("io_uring_peek_cqe: %d (%s)", ret, strerror(-ret));
		return T_EXIT_FAIL;
	}
	t_diag("cqe res=%d user_data=0x%" PRIx64 " flags=0x%x", cqe->res,
	       (uint64_t)cqe->user_data, cqe->flags);
	if (cqe->res != 0 || cqe->user_data != user_data)
		res = T_EXIT_FAIL;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

int main(int argc, char *argv[])
{
	struct io_uring_params p = { 0 };
	struct io_uring ring;
	__u64 user_data = 0x1234abcd5678ef00ULL;
	enum t_exit res;
	int ret;

	t_start("uring_nop", argc, argv);
	if (argc > 1)
		user_data = strtoull(argv[1], NULL, 0);
	ret = io_uring_queue_init_params(4, &ring, &p);
	if (ret == -EPERM || ret == -ENOSYS)
		return t_skip("io_uring_setup not permitted or not built");
	if (ret) {
		t_diag("io_uring_queue_init_params: %d (%s)", ret, strerror(-ret));
		return t_fail("setup failed");
	}
	t_diag("ring fd=%d sq_entries=%u cq_entries=%u features=0x%x",
	       ring.ring_fd, p.sq_entries, p.cq_entries, p.features);

	res = nop_round_trip(&ring, user_data);
	io_uring_queue_exit(&ring);
	return t_result(res, "bad completion");
}
