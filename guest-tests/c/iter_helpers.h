/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the programs that read the series' io_uring iterators
 * (uring_iter.c, uring_lockorder.c). Each run is one KTAP test named after
 * the program's mode, so the result helpers need no name; the rest is the
 * ring and iterator plumbing both programs need.
 */
#ifndef ITER_HELPERS_H
#define ITER_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "t_helpers.h"

/* The name of the run's one test: main() sets it before anything else. */
static const char *t_mode;

static inline enum t_exit t_pass(void)
{
	return t_result(1, t_mode, T_EXIT_PASS, NULL);
}

static inline enum t_exit t_fail(const char *why)
{
	return t_result(1, t_mode, T_EXIT_FAIL, why);
}

static inline enum t_exit t_skip(const char *why)
{
	return t_result(1, t_mode, T_EXIT_SKIP, why);
}

/*
 * What main() returns when the UAPI headers the program was built against
 * lack the io_uring iterator link info: a kernel without the series, so the
 * test skips instead of failing to build.
 */
static inline enum t_exit t_skip_no_uapi(int argc, char *argv[], const char *prog)
{
	t_mode = argc > 1 ? argv[1] : prog;
	t_plan(1);
	return t_skip("built without the io_uring iterator UAPI (KERNEL_HEADERS of a kernel without the series)");
}

/*
 * "step <what>" before something that may hang in the kernel, flushed, so
 * that the output of a helper killed on its deadline says where it was.
 */
static inline void step(const char *what)
{
	printf("step %s\n", what);
	fflush(stdout);
}

/*
 * io_uring_queue_init_params() with @flags, a CQ of @cq_entries when not 0,
 * and, on an SQPOLL ring, a thread that goes idle after @sq_idle_ms (0: the
 * kernel's default). @p gets the parameters the kernel set up.
 */
static inline int ring_init(struct io_uring *ring, struct io_uring_params *p,
			    unsigned int entries, unsigned int cq_entries,
			    unsigned int flags, unsigned int sq_idle_ms)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->flags = flags;
	if (cq_entries) {
		p->flags |= IORING_SETUP_CQSIZE;
		p->cq_entries = cq_entries;
	}
	if (flags & IORING_SETUP_SQPOLL)
		p->sq_thread_idle = sq_idle_ms;
	ret = io_uring_queue_init_params(entries, ring, p);
	if (ret)
		t_diag("io_uring_queue_init_params: %s", strerror(-ret));
	return ret;
}

/*
 * A new iterator fd of @link; with @nonblock, O_NONBLOCK, which is what lets
 * io_uring issue a read of it inline (under ->uring_lock) instead of punting
 * it to io-wq. On failure -1, errno as bpf_iter_create() or fcntl() left it.
 */
static inline int iter_open(struct bpf_link *link, bool nonblock)
{
	int fd = bpf_iter_create(bpf_link__fd(link));

	if (fd >= 0 && nonblock && fcntl(fd, F_SETFL, O_NONBLOCK)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * read(2) @fd to EOF into @buf, NUL-terminated: @chunk bytes a call, or all
 * that fits when @chunk is 0 (small chunks make the iterator stop and resume
 * between objects). EDEADLK ("busy") is retried up to @retries times in all,
 * each counted in *@busy when @busy is given. Returns the length, -E2BIG
 * when @buf is too small, -EDEADLK when the retries ran out, or -errno.
 */
static inline long read_walk(int fd, char *buf, size_t size, size_t chunk,
			     int retries, long *busy)
{
	size_t len = 0;

	for (;;) {
		size_t want = chunk ? chunk : size - len - 1;
		ssize_t n;

		if (!want || len + want >= size)
			return -E2BIG;
		n = read(fd, buf + len, want);
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

#ifdef HAVE_IO_URING_ITER_UAPI

/* @prog (an io_uring iterator program) attached to the ring @ring_fd */
static inline struct bpf_link *attach_ring(struct bpf_program *prog, int ring_fd)
{
	LIBBPF_OPTS(bpf_iter_attach_opts, opts);
	union bpf_iter_link_info linfo;

	memset(&linfo, 0, sizeof(linfo));
	linfo.io_uring.ring_fd = ring_fd;
	opts.link_info = &linfo;
	opts.link_info_len = sizeof(linfo);
	return bpf_program__attach_iter(prog, &opts);
}

#endif /* HAVE_IO_URING_ITER_UAPI */

#endif /* ITER_HELPERS_H */
