// SPDX-License-Identifier: GPL-2.0
/*
 * A ring with known tables (target.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

static int target_refs(struct target *t)
{
	int k;

	for (k = 0; k < 2; k++) {
		int fd = iter_open(t->link[k], false);

		if (fd < 0)
			return -1;
		if (!t->ref[k])
			t->ref[k] = malloc(TEXT_MAX);
		t->ref_len[k] = read_walk(fd, t->ref[k], TEXT_MAX, 0, 100000, NULL);
		close(fd);
		if (t->ref_len[k] <= 0) {
			t_diag("%s: reference walk of the %s iterator: %ld",
			       t->name, it_name[k], t->ref_len[k]);
			return -1;
		}
	}
	return 0;
}

int target_init(struct target *t, const char *name, bool sqpoll)
{
	struct iovec iov[3];
	int fds[4], pfd[2], k, ret;
	char mname[32];

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->pipe_rd = -1;
	if (ring_setup(&t->ring, 64, sqpoll))
		return -1;
	t->ring_open = true;
	t->mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->mem == MAP_FAILED)
		return -1;
	memset(t->mem, 0x5a, 4 * PAGE_SZ);
	iov[0] = (struct iovec){ t->mem, PAGE_SZ };
	iov[1] = (struct iovec){ NULL, 0 };
	iov[2] = (struct iovec){ t->mem + PAGE_SZ + 100, 2 * PAGE_SZ };
	ret = io_uring_register_buffers(&t->ring, iov, 3);
	if (ret) {
		t_diag("%s: register buffers: %s", name, strerror(-ret));
		return -1;
	}
	snprintf(mname, sizeof(mname), "lo-%s", name);
	fds[0] = memfd_create(mname, MFD_CLOEXEC);
	fds[1] = -1;
	fds[2] = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fds[0] < 0 || fds[2] < 0 || pipe2(pfd, O_CLOEXEC))
		return -1;
	fds[3] = pfd[1];
	t->pipe_rd = pfd[0];
	ret = io_uring_register_files(&t->ring, fds, 4);
	close(fds[0]);
	close(fds[2]);
	close(fds[3]);
	if (ret) {
		t_diag("%s: register files: %s", name, strerror(-ret));
		return -1;
	}
	for (k = 0; k < 2; k++) {
		t->link[k] = iter_attach(k, t->ring.ring_fd);
		if (!t->link[k]) {
			t_diag("%s: attach %s: %s", name, it_name[k], strerror(errno));
			return -1;
		}
	}
	return target_refs(t);
}

void target_close_ring(struct target *t)
{
	if (t->ring_open)
		io_uring_queue_exit(&t->ring);
	t->ring_open = false;
}

void target_destroy_links(struct target *t)
{
	int k;

	for (k = 0; k < 2; k++) {
		bpf_link__destroy(t->link[k]);
		t->link[k] = NULL;
	}
}

int ring_freed(int pipe_rd, int ms)
{
	struct pollfd p = { .fd = pipe_rd, .events = POLLIN };
	long end = now_ms() + ms;

	do {
		long left = end - now_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);

		if (n > 0 && (p.revents & POLLHUP))
			return 1;
		if (n < 0 && errno != EINTR)
			return 0;
	} while (now_ms() < end);
	return 0;
}

void target_free(struct target *t, struct tally *tl)
{
	target_destroy_links(t);
	target_close_ring(t);
	if (t->pipe_rd >= 0) {
		int freed = ring_freed(t->pipe_rd, wait_s(10) * 1000);

		if (tl)
			tally_check(tl, "freed", "%s:%d", t->name, freed);
		close(t->pipe_rd);
		t->pipe_rd = -1;
	}
	if (t->mem && t->mem != MAP_FAILED)
		munmap(t->mem, 4 * PAGE_SZ);
	t->mem = NULL;
	free(t->ref[0]);
	free(t->ref[1]);
	t->ref[0] = t->ref[1] = NULL;
}

bool same_walk(const struct target *t, int kind, const char *buf, long res)
{
	return res == t->ref_len[kind] && !memcmp(buf, t->ref[kind], res);
}

void classify(struct tally *tl, const struct target *t, int kind,
	      const char *buf, long res, const char *what)
{
	if (res == -EDEADLK) {
		atomic_fetch_add(&tl->edeadlk, 1);
	} else if (res >= 0 && same_walk(t, kind, buf, res)) {
		atomic_fetch_add(&tl->ok, 1);
	} else {
		atomic_fetch_add(&tl->failed, 1);
		tally_bad(tl, "what=%s target=%s it=%s res=%ld expected=%ld%s", what,
			  t->name, it_name[kind], res, t->ref_len[kind],
			  res == -ETIME ? " hang=1" : res >= 0 ? " content_differs=1" : "");
	}
}

void print_walk(const char *scenario, const char *name, const char *text,
		long res, long busy, const char *extra)
{
	const char *line = text, *nl;

	printf("walk scenario=%s name=%s res=%ld busy=%ld%s%s\n", scenario, name,
	       res, busy, extra ? " " : "", extra ? extra : "");
	if (res <= 0)
		return;
	while (*line && (nl = strchr(line, '\n'))) {
		printf("iter %s/%s %.*s\n", scenario, name, (int)(nl - line), line);
		line = nl + 1;
	}
	if (*line)
		printf("iter %s/%s %s\n", scenario, name, line);
}

void print_refs(const char *scenario, const struct target *t)
{
	print_walk(scenario, "ref-buf", t->ref[IT_BUF], t->ref_len[IT_BUF], 0, NULL);
	print_walk(scenario, "ref-file", t->ref[IT_FILE], t->ref_len[IT_FILE], 0, NULL);
}

int one_page_ring(struct io_uring *ring, char *page, struct bpf_link **link)
{
	struct iovec iov = { page, PAGE_SZ };
	int ret;

	if (ring_setup(ring, 8, false))
		return -1;
	ret = io_uring_register_buffers(ring, &iov, 1);
	if (ret) {
		t_diag("register buffers: %s", strerror(-ret));
		return -1;
	}
	*link = iter_attach(IT_BUF, ring->ring_fd);
	return *link ? 0 : -1;
}
