// SPDX-License-Identifier: GPL-2.0
/*
 * Description: rings held as registered ring fds (IORING_REGISTER_RING_FDS)
 * for uringcr to find. "with-fd" (argv[1]): one ring, registered and still
 * open as an fd: the image must record its registered index and thread.
 * "only": a second ring is registered and its fd closed, so the task holds
 * it by its registered index (and its mapping) alone, which no /proc file
 * lists: uringcr must refuse it by name, never miss it. After "go" both
 * rings still take NOPs through their registered index.
 * test_uringcr.py::test_registered_ring_with_fd and
 * test_registered_ring_only_is_refused check it.
 */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "with-fd";
	struct io_uring_params p, p2;
	struct io_uring ring, hidden;
	int ret, idx;

	t_start("cr_regring", argc, argv);
	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_ring_fd(&ring);
	if (ret != 1) {
		t_diag("io_uring_register_ring_fd: %d", ret);
		return t_fail("register ring fd");
	}
	expect_ring("main", &ring, &p);
	expect("regring", "fd=%d index=%d tid=%ld", ring.ring_fd, ring.enter_ring_fd,
	       (long)syscall(SYS_gettid));
	if (!strcmp(kind, "only")) {
		if (ring_init(&hidden, &p2, 8, 0, 0, 0))
			return t_fail("second ring");
		ret = io_uring_register_ring_fd(&hidden);
		if (ret != 1)
			return t_fail("register the second ring's fd");
		idx = hidden.enter_ring_fd;
		expect_ring("hidden", &hidden, &p2);
		/* from here on the ring has no fd: only its registered index */
		close(hidden.ring_fd);
		expect("hidden", "index=%d", idx);
	} else if (strcmp(kind, "with-fd")) {
		return t_fail("kind is with-fd or only");
	}
	if (owner_wait())
		return t_fail("no go");
	if (run_nops(&ring, 2, 1))
		return t_fail("NOPs after the dump");
	if (!strcmp(kind, "only") && run_nops(&hidden, 2, 1))
		return t_fail("NOPs on the fd-less ring after the dump");
	return t_pass();
}
