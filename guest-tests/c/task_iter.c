// SPDX-License-Identifier: GPL-2.0
/*
 * Description: load the iter/task program (task_iter.bpf.c) through its
 * skeleton, attach it with bpf_program__attach_iter(), create an iterator
 * with bpf_iter_create() and read() it to the end. The iterator text goes to
 * the file named by argv[1]; KTAP on stdout reports bytes read and the
 * program's own count of visited tasks (skel->bss->tasks_seen).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "guest.h"
#include "task_iter.skel.h"

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* read() the iterator until EOF, copying to @out_fd; returns bytes or -errno. */
static long copy_iter(int iter_fd, int out_fd)
{
	static char buf[16384];
	long total = 0;

	for (;;) {
		ssize_t n = read(iter_fd, buf, sizeof(buf));
		int err;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return total;
		err = write_all(out_fd, buf, n);
		if (err)
			return err;
		total += n;
	}
}

int main(int argc, char *argv[])
{
	enum t_exit res = T_EXIT_FAIL;
	const char *reason = NULL;
	struct bpf_link *link = NULL;
	struct task_iter *skel;
	int iter_fd = -1, out_fd;
	long bytes;

	t_start("task_iter", argc, argv);
	if (argc < 2)
		return t_fail("usage: task_iter OUTPUT_FILE");
	out_fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out_fd < 0) {
		t_diag("open %s: %s", argv[1], strerror(errno));
		return t_fail("cannot open output");
	}

	skel = task_iter__open_and_load();
	if (!skel) {
		t_diag("task_iter__open_and_load: %s", strerror(errno));
		if (errno == EPERM)
			res = T_EXIT_SKIP;
		reason = "skeleton open/load failed";
		goto out;
	}
	link = bpf_program__attach_iter(skel->progs.dump_task, NULL);
	if (!link) {
		t_diag("bpf_program__attach_iter: %s", strerror(errno));
		reason = "attach failed";
		goto out;
	}
	iter_fd = bpf_iter_create(bpf_link__fd(link));
	if (iter_fd < 0) {
		t_diag("bpf_iter_create: %s", strerror(-iter_fd));
		reason = "bpf_iter_create failed";
		goto out;
	}
	bytes = copy_iter(iter_fd, out_fd);
	if (bytes < 0) {
		t_diag("read iterator: %s", strerror(-bytes));
		reason = "read failed";
		goto out;
	}
	t_diag("bytes=%ld tasks_seen=%llu", bytes,
	       (unsigned long long)skel->bss->tasks_seen);
	res = bytes > 0 ? T_EXIT_PASS : T_EXIT_FAIL;
	if (!bytes)
		reason = "iterator produced no output";
out:
	if (iter_fd >= 0)
		close(iter_fd);
	bpf_link__destroy(link);
	task_iter__destroy(skel);
	close(out_fd);
	return t_result(res, reason);
}
