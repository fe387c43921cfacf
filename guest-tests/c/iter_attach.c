// SPDX-License-Identifier: GPL-2.0
/*
 * Description: attaching the iterators to fds that are not a ring. Both
 * iterators are attached to a ring, with no link info, to ring_fd 0 (also
 * when fd 0 is a ring), to a closed fd, one never opened, U32_MAX,
 * /dev/null, a regular file, a pipe, a socket, an eventfd and a BPF link;
 * each prints "attach case=.. iter=.. fd=.. errno=..".
 * test_uring_iter.py::test_attach_errors checks the errno of each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "guest.h"
#include "uring_iter.skel.h"

static void attach_case(const char *name, int fd, bool no_link_info)
{
	int k;

	for (k = 0; k < 2; k++) {
		struct bpf_link *link;
		int err;

		errno = 0;
		link = no_link_info ? bpf_program__attach_iter(iter_prog(k), NULL) :
				      iter_attach(k, fd);
		err = link ? 0 : errno;
		printf("attach case=%s iter=%s fd=%d errno=%d\n", name,
		       it_name[k], fd, err);
		bpf_link__destroy(link);
	}
}

static enum t_exit test_attach(void)
{
	struct io_uring ring;
	struct io_uring_params p;
	char path[] = "/tmp/iter_attach.XXXXXX";
	int closed, devnull, reg, pfd[2], sk, efd, ring_fd, saved0;
	struct bpf_link *task_link;

	if (ring_init(&ring, &p, 4, 0, 0, 0))
		return t_fail("ring setup");
	ring_fd = ring.ring_fd;
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	reg = mkostemp(path, O_CLOEXEC);
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	efd = eventfd(0, EFD_CLOEXEC);
	/* far above the lowest free fd, so nothing opened later reuses it */
	closed = fcntl(devnull, F_DUPFD_CLOEXEC, 1000);
	if (devnull < 0 || reg < 0 || sk < 0 || efd < 0 || closed < 0 ||
	    pipe2(pfd, O_CLOEXEC))
		return t_fail("open fds");
	unlink(path);
	close(closed);
	task_link = bpf_program__attach_iter(iter_skel->progs.dump_task, NULL);
	if (!task_link)
		return t_fail("attach the task iterator");

	attach_case("ring", ring_fd, false);
	attach_case("no_link_info", -1, true);
	attach_case("zero", 0, false);
	attach_case("closed", closed, false);
	attach_case("never_opened", 1 << 30, false);
	attach_case("u32_max", -1, false);
	attach_case("devnull", devnull, false);
	attach_case("regular", reg, false);
	attach_case("pipe", pfd[0], false);
	attach_case("socket", sk, false);
	attach_case("eventfd", efd, false);
	attach_case("bpf_link", bpf_link__fd(task_link), false);

	/* 0 means "no ring" even when fd 0 is one */
	saved0 = fcntl(0, F_DUPFD_CLOEXEC, 3);
	if (dup2(ring_fd, 0) != 0)
		return t_fail("dup2 ring to fd 0");
	attach_case("zero_is_ring", 0, false);
	if (saved0 >= 0)
		dup2(saved0, 0);
	else
		close(0);

	bpf_link__destroy(task_link);
	io_uring_queue_exit(&ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_attach", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_attach();
	iter_unload();
	return ret;
}
