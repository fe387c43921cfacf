// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the ring-wide settings for uringcr to dump. A ring created
 * R_DISABLED gets restrictions (SQEs: NOP and READ, only IOSQE_FIXED_FILE;
 * register ops: the five used below) and is enabled; then an async eventfd with a count
 * of 5 is registered (still an fd of the process), io-wq worker limits of
 * 3 bounded and 7 unbounded, CLOCK_BOOTTIME as its clock, NAPI busy
 * polling for 150 us preferred, and a file allocation range over a sparse
 * table. "expect" lines give each.
 * test_uringcr.py::test_dump_ring_settings checks the image against them.
 *
 *   cr_state resume DIR
 *
 * restores such an image into a new process; both run the same
 * continuation under the restrictions ("result" lines).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

#ifndef IORING_REGISTER_CLOCK
#define IORING_REGISTER_CLOCK	29
#endif

#ifndef IORING_REGISTER_NAPI
#define IORING_REGISTER_NAPI	27
#endif

struct clock_register {		/* UAPI struct io_uring_clock_register, 6.12 */
	__u32 clockid;
	__u32 resv[3];
};

struct napi {			/* UAPI struct io_uring_napi, 6.12 */
	__u32 busy_poll_to;
	__u8 prefer_busy_poll;
	__u8 pad[3];
	__u64 resv;
};

static int reg(struct io_uring *ring, unsigned int op, void *arg, unsigned int nr)
{
	int ret = syscall(__NR_io_uring_register, ring->ring_fd, op, arg, nr);

	return ret < 0 ? -errno : ret;
}

/*
 * The continuation, the same in the resumed original and in the restored
 * copy: the restrictions hold (a NOP passes, a WRITE does not) and the
 * registration ops they do not allow are refused. Registering NAPI again
 * hands back the settings it replaces: the ring's own.
 */
static enum t_exit finish(struct io_uring *ring)
{
	struct napi napi = { .busy_poll_to = 1 };
	struct io_uring_sqe *sqe;
	char c = 0;
	int res;

	if (run_nops(ring, 2, 1))
		return t_fail("NOPs after the dump");
	result("nops ok");
	sqe = get_sqe(ring);
	if (!sqe)
		return t_fail("no SQE");
	io_uring_prep_write(sqe, 0, &c, 1, 0);
	if (ring_submit_wait(ring, &res))
		return t_fail("submitting a WRITE");
	result("write res=%d", res);
	result("register-personality res=%d", reg(ring, IORING_REGISTER_PERSONALITY, NULL, 0));
	if (res != -EACCES)
		return t_fail("a restricted WRITE was not refused");
	res = reg(ring, IORING_REGISTER_NAPI, &napi, 1);
	result("napi res=%d busy_poll_to=%u prefer=%u", res, napi.busy_poll_to,
	       napi.prefer_busy_poll);
	return t_pass();
}

int main(int argc, char *argv[])
{
	static const unsigned int reg_ops[] = {
		IORING_REGISTER_EVENTFD_ASYNC, IORING_REGISTER_IOWQ_MAX_WORKERS,
		IORING_REGISTER_CLOCK, IORING_REGISTER_FILES2, IORING_REGISTER_FILE_ALLOC_RANGE,
		IORING_REGISTER_NAPI,
	};
	struct io_uring_restriction res[12] = {};
	struct clock_register clock = { .clockid = CLOCK_BOOTTIME };
	struct napi napi = { .busy_poll_to = 150, .prefer_busy_poll = 1 };
	struct io_uring_params p;
	struct io_uring ring;
	unsigned int workers[2] = { 3, 7 }, i, n = 0;
	uint64_t reg_mask = 0, five = 5;
	int efd, ret;

	t_start("cr_state", argc, argv);
	if (argc > 2 && !strcmp(argv[1], "resume")) {
		/* cr_state resume DIR */
		if (resume_ring(argv[2], 0, &ring))
			return t_fail("restoring the image");
		return finish(&ring);
	}
	if (ring_init(&ring, &p, 8, 0, IORING_SETUP_R_DISABLED, 0))
		return t_fail("ring setup");
	for (i = 0; i < sizeof(reg_ops) / sizeof(reg_ops[0]); i++) {
		res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[n++].register_op = reg_ops[i];
		reg_mask |= 1ULL << reg_ops[i];
	}
	res[n].opcode = IORING_RESTRICTION_SQE_OP;
	res[n++].sqe_op = IORING_OP_NOP;
	res[n].opcode = IORING_RESTRICTION_SQE_OP;
	res[n++].sqe_op = IORING_OP_READ;
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE;
	ret = reg(&ring, IORING_REGISTER_RESTRICTIONS, res, n);
	if (!ret)
		ret = reg(&ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret) {
		t_diag("restrictions: %s", strerror(-ret));
		return t_fail("restrictions");
	}
	efd = eventfd(0, 0);
	if (efd < 0 || write(efd, &five, 8) != 8)
		return t_fail("eventfd");
	ret = io_uring_register_eventfd_async(&ring, efd);
	if (!ret)
		ret = reg(&ring, IORING_REGISTER_IOWQ_MAX_WORKERS, workers, 2);
	if (!ret)
		ret = reg(&ring, IORING_REGISTER_CLOCK, &clock, 0);
	if (!ret)
		ret = reg(&ring, IORING_REGISTER_NAPI, &napi, 1);
	if (!ret)
		ret = io_uring_register_files_sparse(&ring, 32);
	if (!ret)
		ret = io_uring_register_file_alloc_range(&ring, 4, 20);
	if (ret) {
		t_diag("register: %s", strerror(-ret));
		return t_fail("the settings");
	}
	expect_ring("state", &ring, &p);
	expect("eventfd", "fd=%d async=1 count=5", efd);
	expect("restrictions", "register_op=%llu sqe_op=%llu flags_allowed=%u flags_required=0",
	       (unsigned long long)reg_mask,
	       (unsigned long long)(1ULL << IORING_OP_NOP | 1ULL << IORING_OP_READ),
	       IOSQE_FIXED_FILE);
	expect("iowq", "bounded=3 unbounded=7");
	expect("clock", "clockid=%d", CLOCK_BOOTTIME);
	expect("napi", "busy_poll_us=150 prefer=1");
	expect("files", "slots=32 alloc_start=4 alloc_end=24");
	if (owner_wait())
		return t_fail("no go");
	return finish(&ring);
}
