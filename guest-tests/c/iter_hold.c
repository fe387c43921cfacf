// SPDX-License-Identifier: GPL-2.0
/*
 * Description: how long a walk of a ring's iterator keeps the ring's
 * ->uring_lock from others. A table of N one-page buffers or N file slots
 * is walked again and again by a thread, with a program that prints only
 * at the end (a read(2) then visits 1024 objects, one hold of the lock,
 * and fails with EAGAIN to go on); meanwhile this thread times
 * io_uring_register() calls, which need the lock, first with no walk
 * running (the baseline) and then during the walks. The walk time is what
 * one hold would last if a walk took the lock only once; the longest wait
 * of a register call is what a hold lasts.
 *
 *   iter_hold buf|file N [seconds=S] [tscale=F]
 *
 * Prints "hold kind=.. objects=N walks=.. walk_us_avg=.. walk_us_max=..
 * busy=.. calls=.. idle_wait_us_max=.. wait_us_p50=.. wait_us_p99=..
 * wait_us_max=..". Fails only when the set-up or a walk fails (a walk must
 * count N objects): the figures are for the caller to judge.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>

#include "guest.h"
#include "uring_iter.skel.h"

#define HOLD_MAX_BUFS	16384
#define HOLD_MAX_FILES	(1U << 20)
#define HOLD_SAMPLES	(1 << 20)

struct walker {
	struct bpf_link *link;
	enum iter_kind kind;
	long objects;
	atomic_bool stop;
	long walks, busy, sum_us, max_us;
	long error;
};

static void *walk_loop(void *arg)
{
	struct walker *w = arg;
	char buf[256];
	long n, t0, t, got;
	int fd;

	while (!atomic_load(&w->stop)) {
		if (w->kind == IT_BUF)
			iter_skel->bss->buf_objects = 0;
		else
			iter_skel->bss->file_objects = 0;
		fd = iter_open(w->link, false);
		if (fd < 0) {
			w->error = -errno;
			break;
		}
		t0 = now_us();
		n = read_walk(fd, buf, sizeof(buf), 0, 1 << 30, &w->busy);
		t = now_us() - t0;
		close(fd);
		if (n < 0 || sscanf(buf, "count %ld", &got) != 1 ||
		    got != w->objects) {
			printf("bad walk res=%ld out=%.64s\n", n, n > 0 ? buf : "");
			w->error = n < 0 ? n : -EIO;
			break;
		}
		w->walks++;
		w->sum_us += t;
		if (t > w->max_us)
			w->max_us = t;
	}
	return NULL;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* Register calls for @us, their waits into @samples; the count. */
static long time_calls(struct io_uring *ring, long us, long *samples)
{
	long end = now_us() + us, n = 0;

	while (n < HOLD_SAMPLES && now_us() < end) {
		long t0 = now_us();

		/* no eventfd registered: -ENXIO, after taking ->uring_lock */
		io_uring_unregister_eventfd(ring);
		samples[n++] = now_us() - t0;
	}
	return n;
}

static int register_table(struct io_uring *ring, enum iter_kind kind, long nr)
{
	/* the table may be as large as the limit, not beyond (up to nr_open) */
	struct rlimit rl = { nr < 1024 ? 1024 : nr, nr < 1024 ? 1024 : nr };
	struct iovec *iov;
	int *fds, fd, ret;
	char *mem;
	long i;

	if (kind == IT_BUF) {
		mem = mmap(NULL, nr * PAGE_SZ, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		iov = calloc(nr, sizeof(*iov));
		if (mem == MAP_FAILED || !iov)
			return -ENOMEM;
		for (i = 0; i < nr; i++)
			iov[i] = (struct iovec){ mem + i * PAGE_SZ, PAGE_SZ };
		ret = io_uring_register_buffers(ring, iov, nr);
		free(iov);
		return ret;
	}
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	fd = open("/dev/null", O_RDONLY);
	fds = calloc(nr, sizeof(*fds));
	if (fd < 0 || !fds)
		return -ENOMEM;
	for (i = 0; i < nr; i++)
		fds[i] = fd;
	ret = io_uring_register_files(ring, fds, nr);
	free(fds);
	close(fd);
	return ret;
}

int main(int argc, char *argv[])
{
	struct walker w = { 0 };
	struct io_uring ring;
	long *samples, idle, n, idle_max, seconds;
	enum t_exit res;
	pthread_t t;
	int ret;

	t_start("iter_hold", argc, argv);
	if (argc < 3 || (strcmp(argv[1], "buf") && strcmp(argv[1], "file")))
		return t_fail("usage: iter_hold buf|file N [seconds=S]");
	w.kind = strcmp(argv[1], "buf") ? IT_FILE : IT_BUF;
	w.objects = strtol(argv[2], NULL, 0);
	seconds = t_arg_long(argc, argv, "seconds", 3);
	if (w.objects < 1 ||
	    w.objects > (w.kind == IT_BUF ? HOLD_MAX_BUFS : HOLD_MAX_FILES))
		return t_fail("N out of range (buffers up to 16384, files up to 1048576)");
	res = iter_load();
	if (res != T_EXIT_PASS)
		return res;
	samples = malloc(HOLD_SAMPLES * sizeof(*samples));
	if (!samples || ring_setup(&ring, 8, false))
		return t_fail("set-up");
	step("register");
	ret = register_table(&ring, w.kind, w.objects);
	if (ret) {
		t_diag("registering %ld %s: %s", w.objects, it_name[w.kind], strerror(-ret));
		return t_fail("register");
	}
	w.link = attach_ring(w.kind == IT_BUF ? iter_skel->progs.count_buf :
						iter_skel->progs.count_file, ring.ring_fd);
	if (!w.link)
		return t_fail("attach");

	step("baseline");
	idle = time_calls(&ring, seconds * 1000000L / 3, samples);
	qsort(samples, idle, sizeof(*samples), cmp_long);
	idle_max = idle ? samples[idle - 1] : 0;

	step("walks");
	if (pthread_create(&t, NULL, walk_loop, &w))
		return t_fail("pthread_create");
	n = time_calls(&ring, seconds * 1000000L, samples);
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	qsort(samples, n, sizeof(*samples), cmp_long);

	printf("hold kind=%s objects=%ld walks=%ld walk_us_avg=%ld walk_us_max=%ld busy=%ld calls=%ld idle_wait_us_max=%ld wait_us_p50=%ld wait_us_p99=%ld wait_us_max=%ld\n",
	       it_name[w.kind], w.objects, w.walks, w.walks ? w.sum_us / w.walks : 0,
	       w.max_us, w.busy, n, idle_max, n ? samples[n / 2] : 0,
	       n ? samples[n * 99 / 100] : 0, n ? samples[n - 1] : 0);
	if (w.error) {
		t_diag("walk: %s", strerror(-w.error));
		return t_fail("a walk failed");
	}
	if (!w.walks)
		return t_fail("no walk completed");
	return t_pass();
}
