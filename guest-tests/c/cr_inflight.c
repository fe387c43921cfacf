// SPDX-License-Identifier: GPL-2.0
/*
 * Description: requests in flight when uringcr comes. "timeout" (argv[1]):
 * an IORING_OP_TIMEOUT of 1.5 s (scaled by tscale: longer than uringcr
 * takes to start), which completes while the dumper waits:
 * the dump must succeed and hold its CQE (-ETIME). "pipe": a read of an
 * empty pipe, which never completes on its own: the dump must fail naming
 * the request, and leave the owner running. After "go" the owner feeds
 * the pipe and reaps the read. test_uringcr.py::test_drain checks both.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"

#define TIMEOUT_UD	0x7100ULL
#define READ_UD		0x7200ULL

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "timeout";
	struct __kernel_timespec ts;
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	char buf[8];
	int pfd[2];
	__u64 ud;
	int res;

	t_start("cr_inflight", argc, argv);
	ts.tv_sec = (long)(1.5 * t_tscale);
	ts.tv_nsec = (long)((1.5 * t_tscale - ts.tv_sec) * 1e9);
	if (ring_init(&ring, &p, 8, 0, 0, 0) || pipe(pfd))
		return t_fail("setup");
	expect_ring(kind, &ring, &p);
	sqe = io_uring_get_sqe(&ring);
	if (!strcmp(kind, "timeout")) {
		io_uring_prep_timeout(sqe, &ts, 0, 0);
		io_uring_sqe_set_data64(sqe, TIMEOUT_UD);
	} else if (!strcmp(kind, "pipe")) {
		io_uring_prep_read(sqe, pfd[0], buf, sizeof(buf), 0);
		io_uring_sqe_set_data64(sqe, READ_UD);
	} else {
		return t_fail("kind is timeout or pipe");
	}
	if (ring_submit(&ring, 1))
		return t_fail("submit");
	expect("inflight", "user_data=%llu opcode=%u", (unsigned long long)sqe->user_data,
	       sqe->opcode);
	if (owner_wait())
		return t_fail("no go");
	if (!strcmp(kind, "pipe") && write(pfd[1], "feed", 4) != 4)
		return t_fail("write to the pipe");
	res = ring_wait_one(&ring, &ud);
	t_diag("completion res=%d user_data=0x%llx", res, (unsigned long long)ud);
	if (!strcmp(kind, "timeout"))
		return res == -ETIME && ud == TIMEOUT_UD ? t_pass() : t_fail("the timeout's CQE");
	return res == 4 && ud == READ_UD ? t_pass() : t_fail("the read's CQE");
}
