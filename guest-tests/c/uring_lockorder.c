// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the lock orders in which the series' io_uring_buf and
 * io_uring_file iterators (bpf/uring_iter.bpf.c) meet ->uring_lock
 * (issue 5, item 1), with the outcome of every read classified.
 *
 *   uring_lockorder self [rounds=N]     a ring reads its own iterators
 *   uring_lockorder iowq [rounds=N]     ... through io-wq
 *   uring_lockorder fixed               ... as fixed files: refused
 *   uring_lockorder abba [rounds=N] [batch=N] [sqpoll=0|1]
 *                                       rings read each other's iterators
 *   uring_lockorder held [rounds=N]     ->uring_lock held by a stalled
 *                                       io_uring_register() (FUSE)
 *   uring_lockorder busy [rounds=N]     read(2) while the ring is busy
 *   uring_lockorder lifetime [rounds=N] ring closed, tables changed,
 *                                       while iterators exist
 *   uring_lockorder unsafe self|invert  one read in each deadlocking order,
 *                                       for the negative control
 *   every mode also takes tscale=F (multiplies the waits on the kernel)
 *
 * A read is "ok" when it returned the data it must (for a static table the
 * whole walk, byte for byte what read(2) gave before), "edeadlk" when it
 * failed with EDEADLK, "failed" otherwise. The modes print, per scenario,
 *
 *   outcome scenario=<name> ok=<n> edeadlk=<n> failed=<n> [refused=<n>]
 *           rounds=<n> ms=<n>
 *   bad scenario=<name> <what>          one line per failed read (capped)
 *   check scenario=<name> <key>=<value> facts the Python side asserts
 *
 * "busy" and the fixed cases of "lifetime" print the walks instead, for
 * lockorder.py to judge ("walk scenario=.. name=.. res=.. busy=.. ..." and
 * "iter <scenario>/<name> <line>"), and "timing scenario=.. ms=..".
 * test_lock_ordering.py decides what each scenario must show. Hangs are
 * bounded: every CQE wait has a timeout, reported as "hang" and failing.
 * The last line is a KTAP result as in uring_iter.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <linux/fuse.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "iter_helpers.h"
#include "uring_iter.skel.h"

#define PAGE_SZ		4096UL
#define TEXT_MAX	(64 * 1024)
#define BAD_LINES_MAX	20

#ifndef HAVE_IO_URING_ITER_UAPI

int main(int argc, char *argv[])
{
	return t_skip_no_uapi(argc, argv, "uring_lockorder");
}

#else

static double tscale = 1.0;

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
}

/* seconds, scaled like every other wait on the kernel */
static int wait_s(int seconds)
{
	return (int)(seconds * tscale + 0.5);
}

/* ------------------------------------------------------------------ */
/* outcome counting                                                    */

enum { IT_BUF, IT_FILE };
static const char *const it_name[2] = { "buf", "file" };

struct tally {
	const char *name;
	atomic_long ok, edeadlk, failed, refused;
	atomic_int bad_lines;
	long rounds;
	long start_ms;
	bool with_refused;
};

static void tally_init(struct tally *t, const char *name, long rounds)
{
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->rounds = rounds;
	t->start_ms = now_ms();
}

static void __attribute__((format(printf, 2, 3)))
bad(struct tally *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (atomic_fetch_add(&t->bad_lines, 1) >= BAD_LINES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("bad scenario=%s %s\n", t->name, line);
}

static void tally_print(struct tally *t)
{
	printf("outcome scenario=%s ok=%ld edeadlk=%ld failed=%ld", t->name,
	       atomic_load(&t->ok), atomic_load(&t->edeadlk),
	       atomic_load(&t->failed));
	if (t->with_refused)
		printf(" refused=%ld", atomic_load(&t->refused));
	printf(" rounds=%ld ms=%ld\n", t->rounds, now_ms() - t->start_ms);
}

/* for scenarios whose reads the Python side judges */
static void timing_print(struct tally *t)
{
	printf("timing scenario=%s rounds=%ld ms=%ld\n", t->name, t->rounds,
	       now_ms() - t->start_ms);
}

static void __attribute__((format(printf, 3, 4)))
check(struct tally *t, const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("check scenario=%s %s=", t->name, key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ------------------------------------------------------------------ */
/* iterators and rings                                                 */

static struct uring_iter *skel;

static struct bpf_link *attach_iter(int kind, int ring_fd)
{
	return attach_ring(kind == IT_BUF ? skel->progs.dump_buf :
			   skel->progs.dump_file, ring_fd);
}

/* One submitted SQE's completion within the timeout: its res, or -ETIME. */
static int wait_one(struct io_uring *ring, __u64 *user_data)
{
	struct __kernel_timespec ts = { .tv_sec = wait_s(15) };
	struct io_uring_cqe *cqe;
	int ret, res;

	ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (ret)
		return ret == -ETIME ? -ETIME : ret;
	res = cqe->res;
	if (user_data)
		*user_data = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/*
 * io_uring_submit() for @n prepared SQEs: 0, or the error. On an SQPOLL
 * ring liburing returns SQ tail - head, only an estimate: the SQ thread may
 * have consumed the new SQEs already (0), or not yet committed the head of
 * ones whose CQEs are out (the completions are flushed before the head is),
 * so more than @n. Any count is success there.
 */
static int submit(struct io_uring *ring, int n)
{
	int ret = io_uring_submit(ring);

	if (ret < 0)
		return ret;
	if (ring->flags & IORING_SETUP_SQPOLL)
		return 0;
	return ret == n ? 0 : -EIO;
}

/* One IORING_OP_READ of @fd through @ring: the CQE res, or -ETIME (a hang). */
static int ring_read(struct io_uring *ring, int fd, char *buf, unsigned int len,
		     unsigned int sqe_flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int ret;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, len, 0);
	sqe->flags |= sqe_flags;
	ret = submit(ring, 1);
	return ret ? ret : wait_one(ring, NULL);
}

/*
 * A ring with things registered, both iterators attached, and the whole
 * walk of each as read(2) gives it (the tables do not change afterwards,
 * so every successful read must give exactly that).
 *
 * Buffers: slot 0 one page, slot 1 empty, slot 2 two pages from mid-page
 * (three bvecs). Files: a memfd, an empty slot, /dev/null and the write
 * end of a pipe; the table holds the only references to them, so when the
 * ring is freed the pipe's read end (kept here) sees POLLHUP.
 */
struct target {
	char name[16];
	struct io_uring ring;
	bool ring_open;
	char *mem;
	struct bpf_link *link[2];
	char *ref[2];
	long ref_len[2];
	int pipe_rd;
};

static int ring_setup(struct io_uring *ring, unsigned int entries, bool sqpoll)
{
	struct io_uring_params p;

	return ring_init(ring, &p, entries, 0, sqpoll ? IORING_SETUP_SQPOLL : 0, 20);
}

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

static int target_init(struct target *t, const char *name, bool sqpoll)
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
		t->link[k] = attach_iter(k, t->ring.ring_fd);
		if (!t->link[k]) {
			t_diag("%s: attach %s: %s", name, it_name[k], strerror(errno));
			return -1;
		}
	}
	return target_refs(t);
}

static void target_close_ring(struct target *t)
{
	if (t->ring_open)
		io_uring_queue_exit(&t->ring);
	t->ring_open = false;
}

static void target_destroy_links(struct target *t)
{
	int k;

	for (k = 0; k < 2; k++) {
		bpf_link__destroy(t->link[k]);
		t->link[k] = NULL;
	}
}

/*
 * The ring is freed once the pipe's write end, which only its file table
 * holds, is closed: wait up to @ms for POLLHUP. 1 freed, 0 not (yet).
 */
static int ring_freed(int pipe_rd, int ms)
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

static void target_free(struct target *t, struct tally *tl)
{
	target_destroy_links(t);
	target_close_ring(t);
	if (t->pipe_rd >= 0) {
		int freed = ring_freed(t->pipe_rd, wait_s(10) * 1000);

		if (tl)
			check(tl, "freed", "%s:%d", t->name, freed);
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

/* @res bytes in @buf: the whole walk, as the reference has it? */
static bool same_walk(const struct target *t, int kind, const char *buf, long res)
{
	return res == t->ref_len[kind] && !memcmp(buf, t->ref[kind], res);
}

static void classify(struct tally *tl, const struct target *t, int kind,
		     const char *buf, long res, const char *what)
{
	if (res == -EDEADLK) {
		atomic_fetch_add(&tl->edeadlk, 1);
	} else if (res >= 0 && same_walk(t, kind, buf, res)) {
		atomic_fetch_add(&tl->ok, 1);
	} else {
		atomic_fetch_add(&tl->failed, 1);
		bad(tl, "what=%s target=%s it=%s res=%ld expected=%ld%s", what,
		    t->name, it_name[kind], res, t->ref_len[kind],
		    res == -ETIME ? " hang=1" : res >= 0 ? " content_differs=1" : "");
	}
}

/* ------------------------------------------------------------------ */
/* self: a ring reads its own iterators, inline                        */

/*
 * IORING_OP_READ of an O_NONBLOCK iterator fd is issued inline, under the
 * ring's ->uring_lock: reading the ring's own iterator must fail with
 * -EDEADLK, every time, and leave the position alone (read(2) afterwards
 * gives the whole walk). On an SQPOLL ring the SQ thread issues it, under
 * the same lock.
 */
static enum t_exit mode_self(long rounds)
{
	static char buf[TEXT_MAX];
	static const char *const scen[2][2] = {
		{ "self-inline-buf", "self-inline-file" },
		{ "self-inline-sqpoll-buf", "self-inline-sqpoll-file" },
	};
	struct target t[2];
	int r, k;

	if (target_init(&t[0], "a", false) || target_init(&t[1], "sq", true))
		return t_fail("ring setup");
	for (r = 0; r < 2; r++) {
		for (k = 0; k < 2; k++) {
			struct tally tl;
			long i, len;
			int fd;

			tally_init(&tl, scen[r][k], rounds);
			step(tl.name);
			fd = iter_open(t[r].link[k], true);
			if (fd < 0)
				return t_fail("iterator fd");
			for (i = 0; i < rounds; i++) {
				int res = ring_read(&t[r].ring, fd, buf, sizeof(buf), 0);

				classify(&tl, &t[r], k, buf, res, "inline-self-read");
				if (res == -ETIME)
					break;
			}
			/* the failed reads kept the position: all of it is still there */
			len = read_walk(fd, buf, sizeof(buf), 0, 100000, NULL);
			check(&tl, "walk_after", "%d", len > 0 && same_walk(&t[r], k, buf, len));
			close(fd);
			tally_print(&tl);
		}
	}
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* iowq: a ring reads its own iterators through io-wq                  */

#define BUSY_RETRIES	200

/*
 * Read @fd through @ring to EOF with IORING_OP_READ, retrying -EDEADLK
 * (busy: the submitter may still hold the lock when the worker runs) up to
 * BUSY_RETRIES times. Counts every CQE: -EDEADLK as edeadlk; the walk once,
 * as ok when it is complete and equal to the reference.
 */
static void ring_read_walk(struct tally *tl, struct target *t, int kind,
			   struct io_uring *ring, int fd, unsigned int sqe_flags)
{
	static char buf[TEXT_MAX];
	long len = 0;
	int busy = 0;

	for (;;) {
		int res = ring_read(ring, fd, buf + len, sizeof(buf) - len - 1,
				    sqe_flags);

		if (res == -EDEADLK && busy++ < BUSY_RETRIES) {
			atomic_fetch_add(&tl->edeadlk, 1);
			continue;
		}
		if (res <= 0) {
			if (res == 0) {
				classify(tl, t, kind, buf, len, "iowq-walk");
			} else {
				classify(tl, t, kind, buf, res == -EDEADLK ? -EBUSY : res,
					 "iowq-read");
			}
			return;
		}
		len += res;
		if (len + 1 >= (long)sizeof(buf)) {
			classify(tl, t, kind, buf, -E2BIG, "iowq-read");
			return;
		}
	}
}

static enum t_exit mode_iowq(long rounds)
{
	static const char *const scen[3][2] = {
		{ "self-iowq-buf", "self-iowq-file" },
		{ "self-iowq-sqpoll-buf", "self-iowq-sqpoll-file" },
		{ "self-async-buf", "self-async-file" },
	};
	struct target t[2];
	int v, k;

	if (target_init(&t[0], "a", false) || target_init(&t[1], "sq", true))
		return t_fail("ring setup");
	/*
	 * Without O_NONBLOCK the file cannot be read inline: io_uring punts the
	 * read to io-wq, whose worker holds no ->uring_lock. The same with
	 * O_NONBLOCK and IOSQE_ASYNC.
	 */
	for (v = 0; v < 3; v++) {
		struct target *tg = &t[v == 1];
		bool nonblock = v == 2;
		unsigned int flags = v == 2 ? IOSQE_ASYNC : 0;

		for (k = 0; k < 2; k++) {
			struct tally tl;
			long i;

			tally_init(&tl, scen[v][k], rounds);
			step(tl.name);
			for (i = 0; i < rounds; i++) {
				int fd = iter_open(tg->link[k], nonblock);

				if (fd < 0)
					return t_fail("iterator fd");
				ring_read_walk(&tl, tg, k, &tg->ring, fd, flags);
				close(fd);
			}
			tally_print(&tl);
		}
	}
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* walks for the Python side to check                                  */

/*
 * "walk scenario=<s> name=<n> res=<bytes or -errno> busy=<EDEADLK retries>
 * [extra]" and the text as "iter <s>/<n> <line>" lines.
 */
static void print_walk(const char *scenario, const char *name, const char *text,
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

static void print_refs(const char *scenario, const struct target *t)
{
	print_walk(scenario, "ref-buf", t->ref[IT_BUF], t->ref_len[IT_BUF], 0, NULL);
	print_walk(scenario, "ref-file", t->ref[IT_FILE], t->ref_len[IT_FILE], 0, NULL);
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* ------------------------------------------------------------------ */
/* fixed: iterator fds and links as fixed files                        */

/* Count @res: -EBADF is the refusal every path must give. */
static void refusal(struct tally *tl, int res, const char *path, const char *what)
{
	if (res == -EBADF) {
		atomic_fetch_add(&tl->refused, 1);
	} else {
		atomic_fetch_add(&tl->failed, 1);
		bad(tl, "path=%s fd=%s res=%d expected=%d", path, what, res, -EBADF);
	}
}

static int sqe_files_update(struct io_uring *ring, int *fd, int offset)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int ret;

	io_uring_prep_files_update(sqe, fd, 1, offset);
	ret = submit(ring, 1);
	return ret ? ret : wait_one(ring, NULL);
}

/*
 * A link or iterator fd bound to a ring pins the ring, so the series
 * refuses it as a fixed file wherever a ring fd is refused (patch 5), with
 * -EBADF: a ring cannot read its own iterator as a fixed file at all. Every
 * way in is tried, for both iterators, blocking and O_NONBLOCK, for the
 * ring's own iterators and another ring's, and for the links themselves;
 * the slot stays empty (reading it as a fixed file gives -EBADF) and the
 * ring's file iterator shows the table exactly as before.
 */
static enum t_exit mode_fixed(void)
{
	static char buf[TEXT_MAX], before[TEXT_MAX];
	struct target t[2];
	struct io_uring bare;
	struct tally tl;
	struct io_uring *ring = &t[0].ring;
	int o, k, nb, ret, fd, idx;
	const int empty_slot = 1;	/* target_init leaves slot 1 empty */
	long len;

	if (target_init(&t[0], "a", false) || target_init(&t[1], "b", false) ||
	    ring_setup(&bare, 8, false))
		return t_fail("ring setup");
	memcpy(before, t[0].ref[IT_FILE], t[0].ref_len[IT_FILE] + 1);
	tally_init(&tl, "self-fixed-file", 1);
	tl.with_refused = true;
	step(tl.name);
	for (o = 0; o < 2; o++) {		/* ring a's own iterators, then b's */
		for (k = 0; k < 2; k++) {
			for (nb = 0; nb < 3; nb++) {	/* blocking, O_NONBLOCK, the link */
				char what[96];

				fd = nb == 2 ? bpf_link__fd(t[o].link[k]) :
					       iter_open(t[o].link[k], nb);
				if (fd < 0)
					return t_fail("iterator fd");
				snprintf(what, sizeof(what), "%.15s-%s-%s", o ? "b" : "a", it_name[k],
					 nb == 2 ? "link" : nb ? "iter-nonblock" : "iter");
				ret = io_uring_register_files_update(ring, empty_slot, &fd, 1);
				refusal(&tl, ret, "register-files-update", what);
				ret = sqe_files_update(ring, &fd, empty_slot);
				refusal(&tl, ret, "op-files-update", what);
				idx = fd;
				ret = sqe_files_update(ring, &idx, IORING_FILE_INDEX_ALLOC);
				refusal(&tl, ret, "op-files-update-alloc", what);
				/* a whole table with it, on a ring that has none */
				ret = io_uring_register_files(&bare, &fd, 1);
				if (ret == 0)
					io_uring_unregister_files(&bare);
				refusal(&tl, ret, "register-files", what);
				if (nb != 2)
					close(fd);
			}
		}
	}
	/* reading the slot it was refused for: empty, so -EBADF like any */
	ret = ring_read(ring, empty_slot, buf, sizeof(buf), IOSQE_FIXED_FILE);
	refusal(&tl, ret, "read-fixed-slot", "empty-slot");
	fd = iter_open(t[0].link[IT_FILE], false);
	len = read_walk(fd, buf, sizeof(buf), 0, 100000, NULL);
	close(fd);
	check(&tl, "table_unchanged", "%d", len > 0 && !strcmp(buf, before));
	check(&tl, "file_walk_lines", "%d", len > 0 ? count_lines(buf) : -1);
	tally_print(&tl);
	io_uring_queue_exit(&bare);
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* abba: rings read each other's iterators                             */

#define BATCH_MAX	16

struct abba_side {
	struct target *own, *other;
	struct tally *inline_tl, *iowq_tl;
	long rounds;
	int batch;
	pthread_barrier_t *barrier;
	char *bufs;		/* BATCH_MAX * TEXT_MAX */
	atomic_bool *hung;
};

/*
 * Each round: @batch reads of the other ring's iterators (buf, buf, file,
 * file, ...) in one io_uring_enter() on the own ring; even ones O_NONBLOCK,
 * issued inline under the own ring's lock (own -> seq(other) ->
 * trylock(other)), odd ones blocking, through io-wq. Both sides start each
 * round together.
 */
static void *abba_side(void *arg)
{
	struct abba_side *s = arg;
	struct io_uring *ring = &s->own->ring;
	int fds[BATCH_MAX];
	long r;

	for (r = 0; r < s->rounds; r++) {
		int j, n;

		for (j = 0; j < s->batch; j++)
			fds[j] = iter_open(s->other->link[(j / 2) % 2], j % 2 == 0);
		pthread_barrier_wait(s->barrier);
		if (atomic_load(s->hung))
			goto next;
		for (j = 0; j < s->batch; j++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

			io_uring_prep_read(sqe, fds[j], s->bufs + (size_t)j * TEXT_MAX,
					   TEXT_MAX, 0);
			sqe->user_data = j;
		}
		n = submit(ring, s->batch);
		if (n)
			bad(s->inline_tl, "what=submit ret=%d", n);
		for (j = 0; j < s->batch; j++) {
			__u64 ud = 0;
			int res = wait_one(ring, &ud);

			if (res == -ETIME) {
				atomic_store(s->hung, true);
				bad(s->inline_tl, "what=cqe-wait hang=1 round=%ld", r);
				atomic_fetch_add(&s->inline_tl->failed, 1);
				break;
			}
			classify(ud % 2 ? s->iowq_tl : s->inline_tl, s->other,
				 (ud / 2) % 2, s->bufs + ud * TEXT_MAX, res,
				 ud % 2 ? "abba-iowq" : "abba-inline");
		}
next:
		for (j = 0; j < s->batch; j++)
			close(fds[j]);
	}
	return NULL;
}

struct reader2 {
	struct target *t[2];
	struct tally *tl;
	atomic_bool *stop;
};

/* read(2) of both rings' iterators, one read per fresh fd, meanwhile */
static void *abba_reader(void *arg)
{
	static char buf[TEXT_MAX];
	struct reader2 *rd = arg;
	long i;

	for (i = 0; !atomic_load(rd->stop); i++) {
		struct target *t = rd->t[i % 2];
		int kind = (i / 2) % 2;
		int fd = iter_open(t->link[kind], false);
		ssize_t n = read(fd, buf, sizeof(buf));

		classify(rd->tl, t, kind, buf, n < 0 ? -errno : n, "read2");
		close(fd);
	}
	return NULL;
}

static enum t_exit mode_abba(long rounds, int batch, bool sqpoll)
{
	struct target t[2];
	struct tally tl_inline, tl_iowq, tl_read2;
	struct abba_side side[2];
	struct reader2 rd;
	pthread_barrier_t barrier;
	pthread_t thr[3];
	atomic_bool stop = false, hung = false;
	int i;

	if (batch < 2 || batch > BATCH_MAX || batch % 2)
		return t_fail("batch must be even, 2..16");
	if (target_init(&t[0], "a", sqpoll) || target_init(&t[1], "b", sqpoll))
		return t_fail("ring setup");
	tally_init(&tl_inline, sqpoll ? "abba-sqpoll-inline" : "abba-inline", rounds);
	tally_init(&tl_iowq, sqpoll ? "abba-sqpoll-iowq" : "abba-iowq", rounds);
	tally_init(&tl_read2, sqpoll ? "abba-sqpoll-read2" : "abba-read2", rounds);
	check(&tl_inline, "batch", "%d", batch);
	step(tl_inline.name);
	pthread_barrier_init(&barrier, NULL, 2);
	for (i = 0; i < 2; i++) {
		side[i] = (struct abba_side){
			.own = &t[i], .other = &t[1 - i],
			.inline_tl = &tl_inline, .iowq_tl = &tl_iowq,
			.rounds = rounds, .batch = batch, .barrier = &barrier,
			.bufs = malloc((size_t)BATCH_MAX * TEXT_MAX), .hung = &hung,
		};
		if (!side[i].bufs)
			return t_fail("malloc");
	}
	rd = (struct reader2){ .t = { &t[0], &t[1] }, .tl = &tl_read2, .stop = &stop };
	pthread_create(&thr[2], NULL, abba_reader, &rd);
	pthread_create(&thr[0], NULL, abba_side, &side[0]);
	pthread_create(&thr[1], NULL, abba_side, &side[1]);
	pthread_join(thr[0], NULL);
	pthread_join(thr[1], NULL);
	atomic_store(&stop, true);
	pthread_join(thr[2], NULL);
	tally_print(&tl_inline);
	tally_print(&tl_iowq);
	tally_print(&tl_read2);
	if (atomic_load(&hung))
		return t_fail("a read through a ring did not complete: hang");
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* FUSE: a page fault that waits for us                                */

/*
 * A one-file FUSE file system served by a thread of this process. A page of
 * the file that is not in the page cache faults into a FUSE_READ, which the
 * server answers only when the gate is open. io_uring_register() copies its
 * argument in with ->uring_lock held, so a register call whose argument lies
 * on such a page holds the ring's lock until the gate opens: a ring that is
 * busy for as long as we like. (This kernel has no userfaultfd.)
 */
#define FUSE_FILE_SZ	(256UL << 20)
#define FUSE_BUF_SZ	(256 * 1024)

struct fuse_gate {
	int dev;
	char mnt[64];
	int file;
	char *map;
	unsigned long next_page;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool closed;		/* FUSE_READs wait while closed */
	unsigned long reads;	/* FUSE_READs received */
	bool running;
};

static struct fuse_gate gate = {
	.dev = -1, .file = -1,
	.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
};

static void fuse_reply(int dev, uint64_t unique, int error, const void *data,
		       size_t len)
{
	struct fuse_out_header h = {
		.len = sizeof(h) + (error ? 0 : len), .error = error, .unique = unique,
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)data, error ? 0 : len } };

	/* ENOENT: the request was interrupted or aborted meanwhile */
	if (writev(dev, iov, 2) < 0 && errno != ENOENT)
		t_diag("fuse reply: %s", strerror(errno));
}

static void fuse_attr_of(uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	if (node == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0644;
		a->nlink = 1;
		a->size = FUSE_FILE_SZ;
		a->blocks = FUSE_FILE_SZ / 512;
	}
	a->blksize = PAGE_SZ;
}

static void *fuse_serve(void *arg)
{
	static char in[FUSE_BUF_SZ];
	static const char zeros[FUSE_BUF_SZ];
	struct fuse_gate *g = arg;

	for (;;) {
		ssize_t n = read(g->dev, in, sizeof(in));
		struct fuse_in_header *h = (void *)in;
		void *body = in + sizeof(*h);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < (ssize_t)sizeof(*h))
			break;		/* ENODEV: unmounted */
		switch (h->opcode) {
		case FUSE_INIT: {
			struct fuse_init_out out = {
				.major = FUSE_KERNEL_VERSION,
				.minor = FUSE_KERNEL_MINOR_VERSION,
				/* no readahead: one FUSE_READ per faulting page */
				.max_readahead = 0,
				.max_background = 4,
				.congestion_threshold = 3,
				.max_write = 4096,
				.time_gran = 1,
				.max_pages = 1,
			};
			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_LOOKUP: {
			struct fuse_entry_out out = {
				.nodeid = 2, .generation = 1,
				.entry_valid = 3600, .attr_valid = 3600,
			};

			if (h->nodeid != FUSE_ROOT_ID || strcmp(body, "f")) {
				fuse_reply(g->dev, h->unique, -ENOENT, NULL, 0);
				break;
			}
			fuse_attr_of(2, &out.attr);
			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out out = { .attr_valid = 3600 };

			fuse_attr_of(h->nodeid, &out.attr);
			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_OPEN: {
			struct fuse_open_out out = { .fh = 1 };

			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_READ: {
			struct fuse_read_in *r = body;
			size_t len = r->size < sizeof(zeros) ? r->size : sizeof(zeros);

			pthread_mutex_lock(&g->mu);
			g->reads++;
			pthread_cond_broadcast(&g->cv);
			while (g->closed)
				pthread_cond_wait(&g->cv, &g->mu);
			pthread_mutex_unlock(&g->mu);
			if (r->offset >= FUSE_FILE_SZ)
				len = 0;
			fuse_reply(g->dev, h->unique, 0, zeros, len);
			break;
		}
		case FUSE_FLUSH:
		case FUSE_RELEASE:
		case FUSE_DESTROY:
			fuse_reply(g->dev, h->unique, 0, NULL, 0);
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break;		/* these get no reply */
		default:
			fuse_reply(g->dev, h->unique, -ENOSYS, NULL, 0);
			break;
		}
	}
	return NULL;
}

/* 0, or -1 with the reason printed (the caller skips: no FUSE here) */
static int fuse_gate_start(struct fuse_gate *g)
{
	char opts[128], path[96];

	snprintf(g->mnt, sizeof(g->mnt), "/tmp/uring_lockorder.XXXXXX");
	if (!mkdtemp(g->mnt)) {
		t_diag("mkdtemp: %s", strerror(errno));
		return -1;
	}
	g->dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (g->dev < 0) {
		t_diag("open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	/* a private mount namespace: the mount goes away with the process */
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		t_diag("private mount namespace: %s", strerror(errno));
		return -1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", g->dev);
	if (mount("uring_lockorder", g->mnt, "fuse", MS_NOSUID | MS_NODEV, opts)) {
		t_diag("mount fuse on %s: %s", g->mnt, strerror(errno));
		return -1;
	}
	if (pthread_create(&g->thr, NULL, fuse_serve, g))
		return -1;
	g->running = true;
	snprintf(path, sizeof(path), "%s/f", g->mnt);
	g->file = open(path, O_RDONLY | O_CLOEXEC);
	if (g->file < 0) {
		t_diag("open %s: %s", path, strerror(errno));
		return -1;
	}
	g->map = mmap(NULL, FUSE_FILE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		      g->file, 0);
	if (g->map == MAP_FAILED) {
		g->map = NULL;
		t_diag("mmap the FUSE file: %s", strerror(errno));
		return -1;
	}
	/* fault in exactly the page touched, nothing around it */
	madvise(g->map, FUSE_FILE_SZ, MADV_RANDOM);
	return 0;
}

static void fuse_gate_stop(struct fuse_gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->closed = false;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->map)
		munmap(g->map, FUSE_FILE_SZ);
	if (g->file >= 0)
		close(g->file);
	if (g->mnt[0]) {
		umount2(g->mnt, MNT_DETACH);
		rmdir(g->mnt);
	}
	/* the server sees ENODEV once the connection is gone */
	if (g->running)
		pthread_join(g->thr, NULL);
	if (g->dev >= 0)
		close(g->dev);
}

struct hold {
	int ring_fd;
	void *arg;
	pthread_t thr;
	int ret;
	atomic_bool returned;
};

static void *hold_thread(void *p)
{
	struct hold *h = p;

	/* IORING_REGISTER_PROBE copies its argument in with ->uring_lock held */
	h->ret = syscall(__NR_io_uring_register, h->ring_fd, IORING_REGISTER_PROBE,
			 h->arg, 0);
	if (h->ret < 0)
		h->ret = -errno;
	atomic_store(&h->returned, true);
	return NULL;
}

/*
 * Start holding @ring_fd's ->uring_lock: returns 0 once the register call
 * waits for the FUSE_READ of a page never touched before (inside the lock).
 */
static int hold_start(struct hold *h, int ring_fd)
{
	struct timespec deadline;
	unsigned long seen;
	int ret = 0;

	memset(h, 0, sizeof(*h));
	h->ring_fd = ring_fd;
	h->arg = gate.map + (gate.next_page++ * 16 + 8) * PAGE_SZ;
	pthread_mutex_lock(&gate.mu);
	gate.closed = true;
	seen = gate.reads;
	pthread_mutex_unlock(&gate.mu);
	if (pthread_create(&h->thr, NULL, hold_thread, h))
		return -1;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += wait_s(10);
	pthread_mutex_lock(&gate.mu);
	while (gate.reads == seen && ret == 0)
		ret = pthread_cond_timedwait(&gate.cv, &gate.mu, &deadline);
	ret = gate.reads == seen;
	pthread_mutex_unlock(&gate.mu);
	return ret || atomic_load(&h->returned) ? -1 : 0;
}

/* Let the register call finish: its result (0 for the probe). */
static int hold_release(struct hold *h)
{
	pthread_mutex_lock(&gate.mu);
	gate.closed = false;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	pthread_join(h->thr, NULL);
	return h->ret;
}

/* ------------------------------------------------------------------ */
/* held: every reader meets a lock that is held                        */

struct probe {
	struct io_uring *ring;
	pthread_t thr;
	atomic_bool done;
	int res;
};

/* a NOP on the held ring: io_uring_enter() needs ->uring_lock to submit it */
static void *probe_thread(void *p)
{
	struct probe *pr = p;

	io_uring_prep_nop(io_uring_get_sqe(pr->ring));
	pr->res = submit(pr->ring, 1);
	if (!pr->res)
		pr->res = wait_one(pr->ring, NULL);
	atomic_store(&pr->done, true);
	return NULL;
}

enum held_via { VIA_READ2, VIA_INLINE, VIA_IOWQ, VIA_INLINE_SQPOLL, VIA_NR };
static const char *const via_name[VIA_NR] = {
	"read2", "inline", "iowq", "inline-sqpoll",
};

struct held_fd {
	int fd;
	int kind;
	enum held_via via;
	struct io_uring *ring;	/* the reader ring, NULL for read(2) */
	long len;		/* what it read so far */
	char *buf;
};

static long held_read(struct held_fd *h)
{
	long res;

	if (!h->ring) {
		res = read(h->fd, h->buf + h->len, TEXT_MAX - h->len - 1);
		return res < 0 ? -errno : res;
	}
	return ring_read(h->ring, h->fd, h->buf + h->len, TEXT_MAX - h->len - 1, 0);
}

/*
 * Hold @tg's lock, then read its iterators every way: read(2); inline on
 * @rd, another ring (rd's lock -> seq -> trylock(tg): the AB-BA order with
 * tg's side held); through io-wq on @rd; inline on the SQPOLL ring @sq.
 * Each must fail with EDEADLK at once, a NOP submitted on @tg must wait,
 * and after the release the very same fds give the whole walk (the failed
 * reads moved nothing). A walk begun before the hold returns what it had
 * buffered, then EDEADLK, then the rest.
 */
static int held_round(struct target *tg, struct io_uring *rd, struct io_uring *sq,
		      struct tally *tl_held, struct tally *tl_after, struct tally *tl_mid)
{
	struct held_fd hf[VIA_NR * 2];
	struct hold h;
	struct probe pr = { .ring = &tg->ring };
	static char mid_buf[TEXT_MAX];
	long mid_len, res;
	int i, mid_fd, ret;
	char what[96];

	for (i = 0; i < VIA_NR * 2; i++) {
		struct held_fd *x = &hf[i];

		x->kind = i % 2;
		x->via = i / 2;
		x->ring = x->via == VIA_READ2 ? NULL : x->via == VIA_INLINE_SQPOLL ? sq : rd;
		x->fd = iter_open(tg->link[x->kind], x->via == VIA_INLINE ||
				  x->via == VIA_INLINE_SQPOLL);
		x->len = 0;
		x->buf = malloc(TEXT_MAX);
		if (x->fd < 0 || !x->buf)
			return -1;
	}
	/* a walk begun before the hold: one object read, its text buffered */
	mid_fd = iter_open(tg->link[IT_BUF], false);
	mid_len = read(mid_fd, mid_buf, 1);
	if (mid_len != 1)
		return -1;

	if (hold_start(&h, tg->ring.ring_fd)) {
		t_diag("%s: the register call did not stall in the FUSE read", tg->name);
		return -2;
	}
	pthread_create(&pr.thr, NULL, probe_thread, &pr);
	for (i = 0; i < VIA_NR * 2; i++) {
		res = held_read(&hf[i]);
		snprintf(what, sizeof(what), "held-%s", via_name[hf[i].via]);
		classify(tl_held, tg, hf[i].kind, hf[i].buf, res, what);
	}
	res = read(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len - 1);
	check(tl_mid, "leftover_while_held", "%ld", res > 0 ? 1L : res < 0 ? -errno : 0L);
	if (res > 0)
		mid_len += res;
	res = read(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len - 1);
	classify(tl_mid, tg, IT_BUF, mid_buf, res < 0 ? -errno : res, "held-midwalk");
	/* the lock really is held: a submission on the ring waits for it */
	sleep_us(50000);
	check(tl_held, "probe_blocked", "%d", !atomic_load(&pr.done));

	ret = hold_release(&h);
	check(tl_held, "register_ret", "%d", ret);
	pthread_join(pr.thr, NULL);
	check(tl_held, "probe_res", "%d", pr.res);
	/* an SQ thread may still be dropping the lock after posting the NOP */
	sleep_us(20000);

	/*
	 * Nothing holds the lock now: the whole walk. EDEADLK would only be
	 * "busy" (retried, counted, expected to be 0).
	 */
	for (i = 0; i < VIA_NR * 2; i++) {
		struct held_fd *x = &hf[i];
		int busy = 0;

		for (;;) {
			res = held_read(x);
			if (res == -EDEADLK && busy++ < 1000) {
				atomic_fetch_add(&tl_after->edeadlk, 1);
				sleep_us(1000);
				continue;
			}
			if (res <= 0)
				break;
			x->len += res;
		}
		snprintf(what, sizeof(what), "after-%s", via_name[x->via]);
		classify(tl_after, tg, x->kind, x->buf, res < 0 ? res : x->len, what);
		close(x->fd);
		free(x->buf);
	}
	{
		long busy = 0;

		res = read_walk(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len, 0, 1000, &busy);
		atomic_fetch_add(&tl_after->edeadlk, busy);
	}
	classify(tl_after, tg, IT_BUF, mid_buf, res < 0 ? res : res + mid_len,
		 "after-midwalk");
	close(mid_fd);
	return 0;
}

static enum t_exit mode_held(long rounds)
{
	struct target r, a, q;
	struct tally tl_held, tl_after, tl_mid;
	long i;
	int ret = 0;

	if (target_init(&r, "r", false) || target_init(&a, "a", false) ||
	    target_init(&q, "q", true))
		return t_fail("ring setup");
	if (fuse_gate_start(&gate)) {
		fuse_gate_stop(&gate);
		return t_skip("cannot mount a FUSE file system, nothing to stall ->uring_lock with");
	}
	tally_init(&tl_held, "held", rounds);
	tally_init(&tl_after, "held-released", rounds);
	tally_init(&tl_mid, "held-midwalk", rounds);
	/*
	 * r held, read by a and q; a held, read by r (the other half of the
	 * AB-BA pair); q (SQPOLL) held, read by a and r.
	 */
	for (i = 0; i < rounds && !ret; i++) {
		step("held r");
		ret = held_round(&r, &a.ring, &q.ring, &tl_held, &tl_after, &tl_mid);
		if (!ret) {
			step("held a");
			ret = held_round(&a, &r.ring, &q.ring, &tl_held, &tl_after, &tl_mid);
		}
		if (!ret) {
			step("held q");
			ret = held_round(&q, &a.ring, &r.ring, &tl_held, &tl_after, &tl_mid);
		}
	}
	fuse_gate_stop(&gate);
	if (ret)
		return t_fail(ret == -2 ? "could not stall a register call on ->uring_lock" :
			    "held round setup");
	tally_print(&tl_held);
	tally_print(&tl_after);
	tally_print(&tl_mid);
	target_free(&r, NULL);
	target_free(&a, NULL);
	target_free(&q, NULL);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* busy: read(2) while other threads keep the ring's lock busy         */

#define BUSY_SLOTS	4
#define BUSY_SETS	8
#define BUSY_REREG	5	/* every 5th change re-registers the table */

struct busy {
	struct io_uring ring;
	char *mem;
	struct bpf_link *link[2];
	struct iovec iov[BUSY_SETS][BUSY_SLOTS];
	int fds[BUSY_SETS][BUSY_SLOTS];
	/* changes started and completed; change n installs set n % BUSY_SETS */
	atomic_ulong started[2], done[2];
	atomic_bool stop;
	atomic_long nops, changes[2], change_errors;
};

static void *busy_nops(void *arg)
{
	struct busy *b = arg;

	while (!atomic_load(&b->stop)) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;
		int i;

		for (i = 0; i < 8; i++)
			io_uring_prep_nop(io_uring_get_sqe(&b->ring));
		if (io_uring_submit_and_wait(&b->ring, 8) < 0)
			break;
		io_uring_for_each_cqe(&b->ring, head, cqe)
			seen++;
		io_uring_cq_advance(&b->ring, seen);
		atomic_fetch_add(&b->nops, seen);
	}
	return NULL;
}

struct busy_updater {
	struct busy *b;
	int kind;
	unsigned int seed;
};

static int busy_install(struct busy *b, int kind, int set, bool rereg)
{
	int ret;

	if (kind == IT_BUF) {
		if (rereg) {
			ret = io_uring_unregister_buffers(&b->ring);
			return ret ? ret : io_uring_register_buffers(&b->ring, b->iov[set],
								      BUSY_SLOTS);
		}
		ret = io_uring_register_buffers_update_tag(&b->ring, 0, b->iov[set],
							   NULL, BUSY_SLOTS);
	} else {
		if (rereg) {
			ret = io_uring_unregister_files(&b->ring);
			return ret ? ret : io_uring_register_files(&b->ring, b->fds[set],
								    BUSY_SLOTS);
		}
		ret = io_uring_register_files_update(&b->ring, 0, b->fds[set], BUSY_SLOTS);
	}
	return ret == BUSY_SLOTS ? 0 : ret < 0 ? ret : -EIO;
}

/* change n: every slot to set n % BUSY_SETS in one call (one lock hold) */
static void *busy_update(void *arg)
{
	struct busy_updater *u = arg;
	struct busy *b = u->b;
	unsigned long n;

	for (n = 1; !atomic_load(&b->stop); n++) {
		int ret;

		atomic_store(&b->started[u->kind], n);
		ret = busy_install(b, u->kind, n % BUSY_SETS, n % BUSY_REREG == 0);
		if (ret) {
			printf("bad scenario=busy-%s what=change n=%lu ret=%d\n",
			       it_name[u->kind], n, ret);
			atomic_fetch_add(&b->change_errors, 1);
			break;
		}
		atomic_store(&b->done[u->kind], n);
		atomic_fetch_add(&b->changes[u->kind], 1);
		sleep_us(rand_r(&u->seed) % 400);
	}
	return NULL;
}

#define BUSY_ATTEMPTS	100000

/*
 * Tables of BUSY_SLOTS slots that two threads keep switching between
 * BUSY_SETS known states (all slots in one call; every BUSY_REREG-th change
 * by unregistering and registering again, through a moment with no table)
 * while a third submits NOPs. Each walk is one read(2) of a fresh iterator
 * fd, which holds the lock throughout: it must show one state whole, one
 * installed between the last change completed before the read (lo) and the
 * last started after it (hi), or fail with EDEADLK; the next read ends the
 * walk (0). The Python side checks that from the "walk" lines (lo, hi, the
 * retries) with the text under them and the "genbuf"/"genfile" lines that
 * describe every set.
 */
static enum t_exit mode_busy(long rounds)
{
	static char buf[TEXT_MAX];
	struct busy *b = calloc(1, sizeof(*b));
	struct busy_updater up[2];
	struct tally tl;
	pthread_t thr[3];
	size_t mem_len = (size_t)BUSY_SETS * BUSY_SLOTS * 2 * PAGE_SZ;
	long w;
	int s, i;

	if (!b || ring_setup(&b->ring, 16, false))
		return t_fail("ring setup");
	b->mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED)
		return t_fail("mmap");
	memset(b->mem, 0x3c, mem_len);
	printf("busy sets=%d slots=%d rereg_every=%d\n", BUSY_SETS, BUSY_SLOTS, BUSY_REREG);
	for (s = 0; s < BUSY_SETS; s++) {
		for (i = 0; i < BUSY_SLOTS; i++) {
			/* distinct in every set and slot; some span two pages */
			size_t off = 512 * ((s + i) % 8), len = 3000 + 100 * s + 10 * i;
			char name[32];

			if (i == s % BUSY_SLOTS) {	/* one empty slot per set */
				b->iov[s][i] = (struct iovec){ NULL, 0 };
				b->fds[s][i] = -1;
				printf("genbuf set=%d slot=%d empty\n", s, i);
				printf("genfile set=%d slot=%d empty\n", s, i);
				continue;
			}
			b->iov[s][i] = (struct iovec){
				b->mem + ((size_t)s * BUSY_SLOTS + i) * 2 * PAGE_SZ + off, len };
			snprintf(name, sizeof(name), "lo-s%d-i%d", s, i);
			b->fds[s][i] = memfd_create(name, MFD_CLOEXEC);
			if (b->fds[s][i] < 0)
				return t_fail("memfd_create");
			printf("genbuf set=%d slot=%d addr=%lx len=%zu\n", s, i,
			       (unsigned long)b->iov[s][i].iov_base, len);
			printf("genfile set=%d slot=%d name=memfd:%s\n", s, i, name);
		}
	}
	/* change 0: set 0 */
	if (io_uring_register_buffers(&b->ring, b->iov[0], BUSY_SLOTS) ||
	    io_uring_register_files(&b->ring, b->fds[0], BUSY_SLOTS))
		return t_fail("register");
	for (i = 0; i < 2; i++) {
		b->link[i] = attach_iter(i, b->ring.ring_fd);
		if (!b->link[i])
			return t_fail("attach");
	}

	tally_init(&tl, "busy", rounds);
	step("busy");
	for (i = 0; i < 2; i++) {
		up[i] = (struct busy_updater){ .b = b, .kind = i, .seed = 1234 + i };
		pthread_create(&thr[i], NULL, busy_update, &up[i]);
	}
	pthread_create(&thr[2], NULL, busy_nops, b);
	for (w = 0; w < rounds && !atomic_load(&b->change_errors); w++) {
		int kind = w % 2, fd = iter_open(b->link[kind], false);
		unsigned long lo, hi;
		long busy = 0, eof_busy = 0, res, eof;
		char extra[160], name[32];

		if (fd < 0)
			return t_fail("iterator fd");
		for (;;) {
			lo = atomic_load(&b->done[kind]);
			res = read(fd, buf, sizeof(buf) - 1);
			hi = atomic_load(&b->started[kind]);
			if (res >= 0 || errno != EDEADLK || busy >= BUSY_ATTEMPTS)
				break;
			busy++;
		}
		res = res < 0 ? -errno : res;
		if (res >= 0)
			buf[res] = '\0';
		/* the walk ended with that read: the next one gives 0 */
		for (;;) {
			char more[64];

			eof = read(fd, more, sizeof(more));
			if (eof >= 0 || errno != EDEADLK || eof_busy >= BUSY_ATTEMPTS)
				break;
			eof_busy++;
		}
		eof = eof < 0 ? -errno : eof;
		close(fd);
		snprintf(name, sizeof(name), "w%ld", w);
		snprintf(extra, sizeof(extra), "it=%s lo=%lu hi=%lu eof=%ld eof_busy=%ld",
			 it_name[kind], lo, hi, eof, eof_busy);
		print_walk("busy", name, buf, res, busy, extra);
	}
	atomic_store(&b->stop, true);
	for (i = 0; i < 3; i++)
		pthread_join(thr[i], NULL);
	check(&tl, "changes_buf", "%ld", atomic_load(&b->changes[IT_BUF]));
	check(&tl, "changes_file", "%ld", atomic_load(&b->changes[IT_FILE]));
	check(&tl, "nops", "%ld", atomic_load(&b->nops));
	check(&tl, "change_errors", "%ld", atomic_load(&b->change_errors));
	timing_print(&tl);	/* the outcomes come from the Python side's checks */
	for (i = 0; i < 2; i++)
		bpf_link__destroy(b->link[i]);
	io_uring_queue_exit(&b->ring);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* lifetime: the ring and its tables change under an iterator          */

static char lt_text[TEXT_MAX];

/* read(2) @fd to EOF into lt_text after @have bytes already there; print it */
static void lt_finish(const char *scenario, const char *name, int fd, long have)
{
	long busy = 0, res = read_walk(fd, lt_text + have, sizeof(lt_text) - have,
				       0, 100000, &busy);

	print_walk(scenario, name, lt_text, res < 0 ? res : res + have, busy, NULL);
}

static void lt_walk(const char *scenario, const char *name, struct bpf_link *link)
{
	int fd = iter_open(link, false);

	if (fd < 0) {
		print_walk(scenario, name, "", -errno, 0, NULL);
		return;
	}
	lt_finish(scenario, name, fd, 0);
	close(fd);
}

/* an iterator fd with its first object read (one byte of it returned) */
static int lt_begin(struct bpf_link *link)
{
	int fd = iter_open(link, false);

	if (fd >= 0 && read(fd, lt_text, 1) != 1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int memfd_named(const char *name)
{
	return memfd_create(name, MFD_CLOEXEC);
}

static int files_table(struct io_uring *ring, const char *const names[], int nr)
{
	int fds[64], i, ret;

	for (i = 0; i < nr; i++)
		fds[i] = names[i] ? memfd_named(names[i]) : -1;
	ret = io_uring_register_files(ring, fds, nr);
	for (i = 0; i < nr; i++)
		if (fds[i] >= 0)
			close(fds[i]);	/* the table holds the only reference */
	return ret;
}

static int files_set(struct io_uring *ring, int slot, const char *name)
{
	int fd = name ? memfd_named(name) : -1, ret;

	ret = io_uring_register_files_update(ring, slot, &fd, 1);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * The ring's fd is closed: the links keep the ring, and after them the
 * iterator fds alone; reads give the whole walk throughout, and the ring is
 * freed when the last of them goes, not before.
 */
static void lt_ring_closed(void)
{
	const char *sc = "lifetime-ring-closed";
	struct target t;
	struct tally tl;
	int fd[2];

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lc", false)) {
		check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	target_close_ring(&t);
	lt_walk(sc, "links-buf", t.link[IT_BUF]);
	lt_walk(sc, "links-file", t.link[IT_FILE]);
	check(&tl, "freed_with_links", "%d", ring_freed(t.pipe_rd, 200));
	fd[0] = iter_open(t.link[IT_BUF], false);
	fd[1] = iter_open(t.link[IT_FILE], false);
	target_destroy_links(&t);
	lt_finish(sc, "iter-buf", fd[0], 0);
	close(fd[0]);
	check(&tl, "freed_with_iter", "%d", ring_freed(t.pipe_rd, 200));
	lt_finish(sc, "iter-file", fd[1], 0);
	close(fd[1]);
	check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	target_free(&t, NULL);
	timing_print(&tl);
}

/* The buffers are unregistered in the middle of a walk, then new ones registered. */
static void lt_unregister_midwalk(void)
{
	const char *sc = "lifetime-unregister-midwalk";
	struct iovec iov[2];
	struct target t;
	struct tally tl;
	int fd, ret;
	long n;

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lu", false)) {
		check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	fd = lt_begin(t.link[IT_BUF]);
	ret = io_uring_unregister_buffers(&t.ring);
	check(&tl, "unregister_ret", "%d", ret);
	/* the pages behind the buffers are gone with the mapping too */
	munmap(t.mem, 4 * PAGE_SZ);
	t.mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lt_finish(sc, "midwalk", fd, 1);
	iov[0] = (struct iovec){ t.mem + 3 * PAGE_SZ, 77 };
	iov[1] = (struct iovec){ t.mem, 2 * PAGE_SZ };
	memset(t.mem, 1, 4 * PAGE_SZ);
	ret = io_uring_register_buffers(&t.ring, iov, 2);
	check(&tl, "register_ret", "%d", ret);
	/* a walk that ended stays ended */
	n = read(fd, lt_text, sizeof(lt_text));
	check(&tl, "read_after_end", "%ld", n < 0 ? -errno : n);
	close(fd);
	printf("newbuf slot=0 addr=%lx len=77\nnewbuf slot=1 addr=%lx len=%lu\n",
	       (unsigned long)iov[0].iov_base, (unsigned long)iov[1].iov_base,
	       2 * PAGE_SZ);
	lt_walk(sc, "new", t.link[IT_BUF]);
	target_free(&t, &tl);
	timing_print(&tl);
}

/*
 * Files: slots ahead of the walk cleared, replaced and filled while it is
 * under way (the table held the only references to the old files); then the
 * table replaced by a larger one, and one walk positioned beyond the end of
 * a smaller table that replaced that.
 */
static void lt_files_midwalk(void)
{
	static const char *const eight[8] = {
		"lt-a0", "lt-a1", "lt-a2", "lt-a3", NULL, "lt-a5", NULL, "lt-a7",
	};
	static const char *const four[4] = { "lt-d0", "lt-d1", "lt-d2", "lt-d3" };
	const char *sc = "lifetime-files-midwalk";
	struct io_uring ring;
	struct bpf_link *link;
	struct tally tl;
	int fd, ret;

	tally_init(&tl, sc, 1);
	if (ring_setup(&ring, 8, false) || files_table(&ring, eight, 8)) {
		check(&tl, "setup", "0");
		return;
	}
	link = attach_iter(IT_FILE, ring.ring_fd);
	if (!link) {
		check(&tl, "setup", "0");
		return;
	}
	fd = lt_begin(link);
	ret = files_set(&ring, 1, NULL);
	ret = ret == 1 ? files_set(&ring, 2, NULL) : ret;
	ret = ret == 1 ? files_set(&ring, 5, "lt-b5") : ret;
	ret = ret == 1 ? files_set(&ring, 6, "lt-b6") : ret;
	check(&tl, "update_ret", "%d", ret);
	lt_finish(sc, "update", fd, 1);
	close(fd);

	/* grow: 8 slots -> 64 with files at 2, 3 and 40, the walk standing at 3 */
	fd = lt_begin(link);
	ret = io_uring_unregister_files(&ring);
	if (!ret)
		ret = io_uring_register_files_sparse(&ring, 64);
	if (!ret)
		ret = files_set(&ring, 2, "lt-c2") == 1 && files_set(&ring, 3, "lt-c3") == 1 &&
		      files_set(&ring, 40, "lt-c40") == 1 ? 0 : -EIO;
	check(&tl, "grow_ret", "%d", ret);
	lt_finish(sc, "grow", fd, 1);
	close(fd);

	/* shrink: 64 slots -> 4, the walk standing at 3 */
	fd = lt_begin(link);
	ret = io_uring_unregister_files(&ring);
	if (!ret)
		ret = files_table(&ring, four, 4);
	check(&tl, "shrink_ret", "%d", ret);
	lt_finish(sc, "shrink", fd, 1);
	close(fd);
	bpf_link__destroy(link);
	io_uring_queue_exit(&ring);
	timing_print(&tl);
}

/* The link destroyed and the ring fd closed in the middle of a walk. */
static void lt_ring_closed_midwalk(void)
{
	const char *sc = "lifetime-ring-closed-midwalk";
	struct target t;
	struct tally tl;
	int fd;

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lm", false)) {
		check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	fd = lt_begin(t.link[IT_BUF]);
	target_destroy_links(&t);
	target_close_ring(&t);
	lt_finish(sc, "midwalk", fd, 1);
	check(&tl, "freed_with_iter", "%d", ring_freed(t.pipe_rd, 200));
	close(fd);
	check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	target_free(&t, NULL);
	timing_print(&tl);
}

/*
 * The ring's only remaining reference is its own request: a read of its own
 * iterator through io-wq, submitted, then the iterator fd, the links and the
 * ring fd closed before it completes. The request completes on a ring nobody
 * reads, drops the iterator file, and that frees the ring.
 */
static void lt_own_request(void)
{
	const char *sc = "lifetime-own-request";
	struct io_uring_sqe *sqe;
	struct target t;
	struct tally tl;
	int fd, ret;

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lo", false)) {
		check(&tl, "setup", "0");
		return;
	}
	fd = iter_open(t.link[IT_FILE], false);
	sqe = io_uring_get_sqe(&t.ring);
	io_uring_prep_read(sqe, fd, lt_text, sizeof(lt_text), 0);
	ret = submit(&t.ring, 1);
	check(&tl, "submit_ret", "%d", ret);
	close(fd);
	target_destroy_links(&t);
	target_close_ring(&t);
	check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	target_free(&t, NULL);
	timing_print(&tl);
}

struct lt_reader {
	int fds[4];
	int kinds[4];
	struct tally *tl;
	atomic_bool *go;
};

static bool well_formed(const char *text, long len)
{
	const char *line = text, *end = text + len;
	int ends = 0;

	if (len <= 0 || text[len - 1] != '\n')
		return false;
	while (line < end) {
		const char *nl = memchr(line, '\n', end - line);

		if (!strncmp(line, "end ", 4))
			ends++;
		else if (ends || (strncmp(line, "buf seq=", 8) && strncmp(line, "file ring=", 10)))
			return false;
		line = nl + 1;
	}
	return ends == 1;
}

/* read the walks in 64-byte reads, slowly, while the main thread changes things */
static void *lt_read_slowly(void *arg)
{
	struct lt_reader *r = arg;
	static char text[4][TEXT_MAX];
	long len[4] = { 0 };
	bool done[4] = { false };
	int left = 4, i;

	while (!atomic_load(r->go))
		sched_yield();
	while (left) {
		for (i = 0; i < 4; i++) {
			ssize_t n;

			if (done[i])
				continue;
			n = read(r->fds[i], text[i] + len[i], 64);
			if (n < 0 && errno == EDEADLK) {
				atomic_fetch_add(&r->tl->edeadlk, 1);
				continue;
			}
			if (n > 0 && len[i] + n < TEXT_MAX - 64) {
				len[i] += n;
				continue;
			}
			done[i] = true;
			left--;
			if (n == 0 && well_formed(text[i], len[i])) {
				atomic_fetch_add(&r->tl->ok, 1);
			} else {
				atomic_fetch_add(&r->tl->failed, 1);
				bad(r->tl, "what=chunked-walk it=%s res=%zd len=%ld",
				    it_name[r->kinds[i]], n < 0 ? -errno : n, len[i]);
			}
		}
		sleep_us(300);
	}
	return NULL;
}

/*
 * Rounds of: a fresh ring, four iterator fds read in 64-byte pieces by
 * another thread while this one clears and replaces files, unregisters and
 * re-registers the buffers, destroys the links and closes the ring. Every
 * walk must come out well formed (lines of objects, one final call, last),
 * every piece be data or EDEADLK, and every ring be freed at the end.
 */
static void lt_stress(long rounds)
{
	struct tally tl;
	long r, freed = 0;

	tally_init(&tl, "lifetime-stress", rounds);
	step(tl.name);
	for (r = 0; r < rounds; r++) {
		struct lt_reader rd = { .tl = &tl };
		struct iovec iov = { NULL, PAGE_SZ };
		atomic_bool go = false;
		struct target t;
		pthread_t thr;
		int i, nfd = 0;

		if (target_init(&t, "ls", false)) {
			atomic_fetch_add(&tl.failed, 1);
			bad(&tl, "what=setup round=%ld", r);
			break;
		}
		for (i = 0; i < 4; i++) {
			rd.kinds[i] = i % 2;
			rd.fds[i] = iter_open(t.link[i % 2], false);
		}
		rd.go = &go;
		pthread_create(&thr, NULL, lt_read_slowly, &rd);
		atomic_store(&go, true);
		iov.iov_base = t.mem + 2 * PAGE_SZ;
		files_set(&t.ring, 0, NULL);
		files_set(&t.ring, 1, "lt-s1");
		sleep_us(500);
		io_uring_unregister_buffers(&t.ring);
		sleep_us(500);
		io_uring_register_buffers(&t.ring, &iov, 1);
		files_set(&t.ring, 2, NULL);
		sleep_us(500);
		bpf_link__destroy(t.link[IT_BUF]);
		t.link[IT_BUF] = NULL;
		target_close_ring(&t);
		sleep_us(500);
		bpf_link__destroy(t.link[IT_FILE]);
		t.link[IT_FILE] = NULL;
		pthread_join(thr, NULL);
		for (i = 0; i < 4; i++)
			close(rd.fds[i]);
		nfd = ring_freed(t.pipe_rd, wait_s(10) * 1000);
		freed += nfd;
		if (!nfd)
			bad(&tl, "what=not-freed round=%ld", r);
		target_free(&t, NULL);
	}
	check(&tl, "freed_rings", "%ld", freed);
	tally_print(&tl);
}

static enum t_exit mode_lifetime(long rounds)
{
	step("lifetime-ring-closed");
	lt_ring_closed();
	step("lifetime-unregister-midwalk");
	lt_unregister_midwalk();
	step("lifetime-files-midwalk");
	lt_files_midwalk();
	step("lifetime-ring-closed-midwalk");
	lt_ring_closed_midwalk();
	step("lifetime-own-request");
	lt_own_request();
	lt_stress(rounds);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* unsafe: the two orders for the negative control                     */

/*
 * Only meaningful on the negative-control kernel (kernel-patches/negative/,
 * ->start() sleeping on ->uring_lock): each order makes lockdep report,
 * once per boot, so the harness runs each in a boot of its own.
 *
 *   order=self    the ring reads its own iterator inline: ->uring_lock,
 *                 seq_file->lock, ->uring_lock again. Lockdep: "possible
 *                 recursive locking"; then the task deadlocks for real and
 *                 this never returns.
 *   order=invert  read(2) of ring A's iterator (seq_file->lock, then A's
 *                 ->uring_lock), then ring B reads A's iterator inline (B's
 *                 ->uring_lock, then seq_file->lock): the AB-BA of the cover
 *                 letter's drawing. Lockdep: "possible circular locking
 *                 dependency"; nothing holds A's lock, so the read completes.
 *
 * Nothing here may read an iterator before the order under test: a read(2)
 * records seq_file->lock -> ->uring_lock, which would turn the self-read's
 * recursive report into a circular one. On the series' kernel both orders
 * end in -EDEADLK or success, as the other modes check.
 */
static int unsafe_ring(struct io_uring *ring, char *page, struct bpf_link **link)
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
	*link = attach_iter(IT_BUF, ring->ring_fd);
	return *link ? 0 : -1;
}

static enum t_exit mode_unsafe(const char *order)
{
	static char page[2][PAGE_SZ] __attribute__((aligned(PAGE_SZ)));
	static char buf[TEXT_MAX];
	struct io_uring ring[2];
	struct bpf_link *link[2];
	long len;
	int fd, res;

	if (unsafe_ring(&ring[0], page[0], &link[0]) ||
	    unsafe_ring(&ring[1], page[1], &link[1]))
		return t_fail("ring setup");
	fd = iter_open(link[0], true);
	if (fd < 0)
		return t_fail("iterator fd");
	if (!strcmp(order, "self")) {
		t_diag("ring a reads its own iterator inline");
		res = ring_read(&ring[0], fd, buf, sizeof(buf), 0);
	} else if (!strcmp(order, "invert")) {
		len = read_walk(fd, buf, sizeof(buf), 0, 0, NULL);
		t_diag("read(2) of ring a's iterator: %ld", len);
		t_diag("ring b reads ring a's iterator inline");
		res = ring_read(&ring[1], fd, buf, sizeof(buf), 0);
	} else {
		return t_fail("order must be self or invert");
	}
	printf("unsafe order=%s res=%d\n", order, res);
	return t_pass();
}

/* ------------------------------------------------------------------ */

static long arg_long(int argc, char *argv[], const char *key, long def)
{
	size_t n = strlen(key);
	int i;

	for (i = 2; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return strtol(argv[i] + n + 1, NULL, 0);
	return def;
}

int main(int argc, char *argv[])
{
	enum t_exit res;
	long rounds;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s self|iowq|fixed|abba|held|busy|lifetime|unsafe [self|invert] [rounds=N] [batch=N] [sqpoll=0|1] [tscale=F]\n",
			argv[0]);
		return T_EXIT_FAIL;
	}
	t_mode = argv[1];
	for (i = 2; i < argc; i++)
		if (!strncmp(argv[i], "tscale=", 7))
			tscale = atof(argv[i] + 7) > 0 ? atof(argv[i] + 7) : 1.0;
	rounds = arg_long(argc, argv, "rounds", 10);
	if (rounds < 1)
		rounds = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_plan(1);
	skel = uring_iter__open_and_load();
	if (!skel) {
		t_diag("uring_iter__open_and_load: %s", strerror(errno));
		return t_fail("loading the iterator programs failed: does the kernel have the io_uring_buf/io_uring_file iterators?");
	}
	if (!strcmp(t_mode, "self"))
		res = mode_self(rounds);
	else if (!strcmp(t_mode, "iowq"))
		res = mode_iowq(rounds);
	else if (!strcmp(t_mode, "fixed"))
		res = mode_fixed();
	else if (!strcmp(t_mode, "abba"))
		res = mode_abba(rounds, arg_long(argc, argv, "batch", 8),
				arg_long(argc, argv, "sqpoll", 0));
	else if (!strcmp(t_mode, "held"))
		res = mode_held(rounds);
	else if (!strcmp(t_mode, "busy"))
		res = mode_busy(rounds);
	else if (!strcmp(t_mode, "lifetime"))
		res = mode_lifetime(rounds);
	else if (!strcmp(t_mode, "unsafe"))
		res = mode_unsafe(argc > 2 ? argv[2] : "");
	else
		res = t_fail("unknown mode");
	uring_iter__destroy(skel);
	return res;
}

#endif /* HAVE_IO_URING_ITER_UAPI */
