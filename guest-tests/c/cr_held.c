// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a ring whose ->uring_lock stays held while uringcr dumps
 * its owner: a child process that shares the ring holds the lock with an
 * io_uring_register() stalled in a page fault (the FUSE gate, as
 * lockorder_held uses). The child is not frozen with the owner, so every
 * iterator read answers EDEADLK: the dump must fail within --lock-timeout,
 * naming the lock, and resume the owner. After "go" the child releases
 * the lock and the ring takes NOPs. Skips when FUSE cannot be mounted.
 * test_uringcr_safety.py::test_held_lock_fails_the_dump_in_time checks it.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"

static int child(int ring_fd, int ready_fd, int release_fd)
{
	struct pollfd pfd = { .fd = release_fd, .events = POLLIN };
	struct hold h;

	if (fuse_gate_start())
		return 77;
	if (hold_start(&h, ring_fd))
		return 1;
	if (write(ready_fd, "H", 1) != 1)
		return 1;
	/*
	 * Released on the owner's word, or after 60 s (scaled) whatever
	 * happens: an owner killed now waits in do_exit() for this very lock
	 * with its end of the pipe still open, so EOF would never come.
	 */
	poll(&pfd, 1, wait_s(60) * 1000);
	hold_release(&h);
	fuse_gate_stop();
	return 0;
}

int main(int argc, char *argv[])
{
	struct io_uring_params p;
	struct io_uring ring;
	int ready[2], release[2], status;
	pid_t pid;
	char c;

	t_start("cr_held", argc, argv);
	if (ring_init(&ring, &p, 8, 0, 0, 0) || pipe(ready) || pipe(release))
		return t_fail("setup");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return t_fail("fork");
	if (!pid) {
		close(ready[0]);
		close(release[1]);
		_exit(child(ring.ring_fd, ready[1], release[0]));
	}
	close(ready[1]);
	close(release[0]);
	if (read(ready[0], &c, 1) != 1) {
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			return t_skip("FUSE cannot be mounted here");
		return t_fail("the child did not get the lock held");
	}
	expect_ring("held", &ring, &p);
	expect("holder", "pid=%d", pid);
	if (owner_wait()) {
		kill(pid, SIGKILL);
		return t_fail("no go");
	}
	if (write(release[1], "R", 1) != 1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status))
		return t_fail("releasing the lock");
	return run_nops(&ring, 2, 1) ? t_fail("NOPs after the release") : t_pass();
}
