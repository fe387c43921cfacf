// SPDX-License-Identifier: GPL-2.0
/*
 * The io_uring iterators (iter.h). The only file that needs the series'
 * UAPI (union bpf_iter_link_info's io_uring member): without it every
 * program still builds, and iter_load() makes it skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "iter.h"
#include "ktap.h"
#include "uring_iter.skel.h"

const char *const it_name[2] = { "buf", "file" };
struct uring_iter *iter_skel;

enum t_exit iter_load(void)
{
#ifndef HAVE_IO_URING_ITER_UAPI
	return t_skip("built without the io_uring iterator UAPI (KERNEL_HEADERS of a kernel without the series)");
#else
	iter_skel = uring_iter__open_and_load();
	if (!iter_skel) {
		t_diag("uring_iter__open_and_load: %s", strerror(errno));
		return t_fail("loading the iterator programs failed: does the kernel have the io_uring_reg_buf/io_uring_reg_file iterators?");
	}
	return T_EXIT_PASS;
#endif
}

void iter_unload(void)
{
	uring_iter__destroy(iter_skel);
	iter_skel = NULL;
}

struct bpf_program *iter_prog(enum iter_kind kind)
{
	return kind == IT_BUF ? iter_skel->progs.dump_buf : iter_skel->progs.dump_file;
}

struct bpf_link *attach_ring(struct bpf_program *prog, int ring_fd)
{
#ifdef HAVE_IO_URING_ITER_UAPI
	LIBBPF_OPTS(bpf_iter_attach_opts, opts);
	union bpf_iter_link_info linfo;

	memset(&linfo, 0, sizeof(linfo));
	linfo.io_uring.ring_fd = ring_fd;
	opts.link_info = &linfo;
	opts.link_info_len = sizeof(linfo);
	return bpf_program__attach_iter(prog, &opts);
#else
	(void)prog;
	(void)ring_fd;
	errno = EOPNOTSUPP;
	return NULL;
#endif
}

struct bpf_link *iter_attach(enum iter_kind kind, int ring_fd)
{
	return attach_ring(iter_prog(kind), ring_fd);
}

int iter_open(struct bpf_link *link, bool nonblock)
{
	int fd = bpf_iter_create(bpf_link__fd(link));

	if (fd >= 0 && nonblock && fcntl(fd, F_SETFL, O_NONBLOCK)) {
		close(fd);
		return -1;
	}
	return fd;
}

long read_walk(int fd, char *buf, size_t size, size_t chunk, int retries,
	       long *busy)
{
	size_t len = 0;

	for (;;) {
		size_t want = chunk ? chunk : size - len - 1;
		ssize_t n;

		if (!want || len + want >= size)
			return -E2BIG;
		n = read(fd, buf + len, want);
		/* the end of a read(2) that showed its 1024 objects: go on */
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0 && errno == EDEADLK && retries-- > 0) {
			if (busy)
				++*busy;
			sched_yield();
			continue;
		}
		if (n < 0)
			return -errno;
		if (!n)
			break;
		len += n;
	}
	buf[len] = '\0';
	return len;
}

int iter_dump(struct bpf_link *link, const char *name, size_t chunk)
{
	static char out[2 * ITER_WHOLE];
	char *line, *save = NULL;
	long len;
	int fd;

	fd = iter_open(link, false);
	if (fd < 0) {
		t_diag("bpf_iter_create: %s", strerror(errno));
		return -1;
	}
	len = read_walk(fd, out, sizeof(out), chunk, 0, NULL);
	close(fd);
	if (len < 0) {
		printf("walk %s error=%ld\n", name, -len);
		return -1;
	}
	printf("walk %s bytes=%ld chunk=%zu\n", name, len, chunk);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("iter %s %s\n", name, line);
	return 0;
}

void iter_print_counters(const char *when)
{
	printf("counters when=%s buf_objects=%llu buf_stops=%llu file_objects=%llu file_stops=%llu\n",
	       when, (unsigned long long)iter_skel->bss->buf_objects,
	       (unsigned long long)iter_skel->bss->buf_stops,
	       (unsigned long long)iter_skel->bss->file_objects,
	       (unsigned long long)iter_skel->bss->file_stops);
}
