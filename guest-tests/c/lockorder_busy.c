// SPDX-License-Identifier: GPL-2.0
/*
 * Description: read(2) of a ring's iterators while other threads keep its
 * lock busy. Tables of BUSY_SLOTS slots that two threads keep switching
 * between BUSY_SETS known states (all slots in one call; every BUSY_REREG-th
 * change by unregistering and registering again, through a moment with no
 * table) while a third submits NOPs. Each walk is one read(2) of a fresh
 * iterator fd, which holds the lock throughout: it must show one state
 * whole, one installed between the last change completed before the read
 * (lo) and the last started after it (hi), or fail with EDEADLK; the next
 * read ends the walk (0).
 *
 *   lockorder_busy [rounds=N] [tscale=F]
 *
 * Prints "genbuf"/"genfile" lines describing every set and the walks
 * ("walk scenario=busy name=w<n> res=.. busy=.. it=.. lo=.. hi=.. eof=..
 * eof_busy=.." with "iter busy/w<n> ..." lines), which lockorder.py judges
 * for test_lock_ordering.py::test_read_while_ring_busy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

#define BUSY_SLOTS	4
#define BUSY_SETS	8
#define BUSY_REREG	5	/* every 5th change re-registers the table */
#define BUSY_ATTEMPTS	100000

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

/* The sets, printed as genbuf/genfile lines; set 0 registered. 0 or -1. */
static int busy_setup(struct busy *b)
{
	size_t mem_len = (size_t)BUSY_SETS * BUSY_SLOTS * 2 * PAGE_SZ;
	int s, i;

	if (ring_setup(&b->ring, 16, false))
		return -1;
	b->mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED) {
		t_diag("mmap: %s", strerror(errno));
		return -1;
	}
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
			if (b->fds[s][i] < 0) {
				t_diag("memfd_create: %s", strerror(errno));
				return -1;
			}
			printf("genbuf set=%d slot=%d addr=%lx len=%zu\n", s, i,
			       (unsigned long)b->iov[s][i].iov_base, len);
			printf("genfile set=%d slot=%d name=memfd:%s\n", s, i, name);
		}
	}
	/* change 0: set 0 */
	if (io_uring_register_buffers(&b->ring, b->iov[0], BUSY_SLOTS) ||
	    io_uring_register_files(&b->ring, b->fds[0], BUSY_SLOTS)) {
		t_diag("register set 0 failed");
		return -1;
	}
	for (i = 0; i < 2; i++) {
		b->link[i] = iter_attach(i, b->ring.ring_fd);
		if (!b->link[i]) {
			t_diag("attach %s: %s", it_name[i], strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Walk w<@w>: one read(2) (EDEADLK retried), then the read that must end it */
static int busy_walk(struct busy *b, long w)
{
	static char buf[TEXT_MAX];
	int kind = w % 2, fd = iter_open(b->link[kind], false);
	unsigned long lo, hi;
	long busy = 0, eof_busy = 0, res, eof;
	char extra[160], name[32];

	if (fd < 0)
		return -1;
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
	return 0;
}

static enum t_exit test_busy(long rounds)
{
	struct busy *b = calloc(1, sizeof(*b));
	struct busy_updater up[2];
	struct tally tl;
	pthread_t thr[3];
	long w;
	int i;

	if (!b || busy_setup(b))
		return t_fail("setup");
	tally_init(&tl, "busy", rounds);
	step("busy");
	for (i = 0; i < 2; i++) {
		up[i] = (struct busy_updater){ .b = b, .kind = i, .seed = 1234 + i };
		pthread_create(&thr[i], NULL, busy_update, &up[i]);
	}
	pthread_create(&thr[2], NULL, busy_nops, b);
	for (w = 0; w < rounds && !atomic_load(&b->change_errors); w++)
		if (busy_walk(b, w))
			return t_fail("iterator fd");
	atomic_store(&b->stop, true);
	for (i = 0; i < 3; i++)
		pthread_join(thr[i], NULL);
	tally_check(&tl, "changes_buf", "%ld", atomic_load(&b->changes[IT_BUF]));
	tally_check(&tl, "changes_file", "%ld", atomic_load(&b->changes[IT_FILE]));
	tally_check(&tl, "nops", "%ld", atomic_load(&b->nops));
	tally_check(&tl, "change_errors", "%ld", atomic_load(&b->change_errors));
	tally_timing(&tl);	/* the outcomes come from the Python side's checks */
	for (i = 0; i < 2; i++)
		bpf_link__destroy(b->link[i]);
	io_uring_queue_exit(&b->ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_busy", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_busy(rounds < 1 ? 1 : rounds);
	iter_unload();
	return ret;
}
