// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the ring and its tables change under an iterator, and the
 * ring goes. Links and iterator files hold no ring, so its close() frees
 * it under them. Five fixed cases print their walks for lockorder.py to
 * judge: the ring fd closed while links and iterator fds exist; the
 * buffers unregistered mid-walk and new ones registered (the walk fails
 * with ESTALE, and stays failed); file slots cleared, replaced and filled
 * mid-walk, then the table replaced mid-walk by one of 64 slots and by one
 * of 4 (ESTALE); the link and ring fd gone mid-walk; the ring closed while
 * its own io-wq read of its iterator is in flight. Then rounds of a
 * ring torn down under a reader (scenario lifetime-stress, counted here).
 *
 *   lockorder_lifetime [rounds=N] [tscale=F]
 *
 * test_lock_ordering.py::test_lifetime_ring_and_tables_under_iterators.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

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

static int files_table(struct io_uring *ring, const char *const names[], int nr)
{
	int fds[64], i, ret;

	for (i = 0; i < nr; i++)
		fds[i] = names[i] ? memfd_create(names[i], MFD_CLOEXEC) : -1;
	ret = io_uring_register_files(ring, fds, nr);
	for (i = 0; i < nr; i++)
		if (fds[i] >= 0)
			close(fds[i]);	/* the table holds the only reference */
	return ret;
}

static int files_set(struct io_uring *ring, int slot, const char *name)
{
	int fd = name ? memfd_create(name, MFD_CLOEXEC) : -1, ret;

	ret = io_uring_register_files_update(ring, slot, &fd, 1);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * The ring's fd is closed while links and iterator fds exist: the ring is
 * freed under them, and their walks then end at once, with no object and
 * no final call.
 */
static void lt_ring_closed(void)
{
	const char *sc = "lifetime-ring-closed";
	struct target t;
	struct tally tl;
	int fd[2];

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lc", false)) {
		tally_check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	fd[0] = iter_open(t.link[IT_BUF], false);
	fd[1] = iter_open(t.link[IT_FILE], false);
	target_close_ring(&t);
	tally_check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	lt_walk(sc, "links-buf", t.link[IT_BUF]);
	lt_walk(sc, "links-file", t.link[IT_FILE]);
	lt_finish(sc, "iter-buf", fd[0], 0);
	lt_finish(sc, "iter-file", fd[1], 0);
	close(fd[0]);
	close(fd[1]);
	target_destroy_links(&t);
	target_free(&t, NULL);
	tally_timing(&tl);
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
		tally_check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	fd = lt_begin(t.link[IT_BUF]);
	ret = io_uring_unregister_buffers(&t.ring);
	tally_check(&tl, "unregister_ret", "%d", ret);
	/* the pages behind the buffers are gone with the mapping too */
	munmap(t.mem, 4 * PAGE_SZ);
	t.mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lt_finish(sc, "midwalk", fd, 1);
	iov[0] = (struct iovec){ t.mem + 3 * PAGE_SZ, 77 };
	iov[1] = (struct iovec){ t.mem, 2 * PAGE_SZ };
	memset(t.mem, 1, 4 * PAGE_SZ);
	ret = io_uring_register_buffers(&t.ring, iov, 2);
	tally_check(&tl, "register_ret", "%d", ret);
	/* a walk that failed stays failed, even with a table registered again */
	n = read(fd, lt_text, sizeof(lt_text));
	tally_check(&tl, "read_after_end", "%ld", n < 0 ? -errno : n);
	close(fd);
	printf("newbuf slot=0 addr=%lx len=77\nnewbuf slot=1 addr=%lx len=%lu\n",
	       (unsigned long)iov[0].iov_base, (unsigned long)iov[1].iov_base,
	       2 * PAGE_SZ);
	lt_walk(sc, "new", t.link[IT_BUF]);
	target_free(&t, &tl);
	tally_timing(&tl);
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
		tally_check(&tl, "setup", "0");
		return;
	}
	link = iter_attach(IT_FILE, ring.ring_fd);
	if (!link) {
		tally_check(&tl, "setup", "0");
		return;
	}
	fd = lt_begin(link);
	ret = files_set(&ring, 1, NULL);
	ret = ret == 1 ? files_set(&ring, 2, NULL) : ret;
	ret = ret == 1 ? files_set(&ring, 5, "lt-b5") : ret;
	ret = ret == 1 ? files_set(&ring, 6, "lt-b6") : ret;
	tally_check(&tl, "update_ret", "%d", ret);
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
	tally_check(&tl, "grow_ret", "%d", ret);
	lt_finish(sc, "grow", fd, 1);
	close(fd);

	/* shrink: 64 slots -> 4, the walk standing at 3 */
	fd = lt_begin(link);
	ret = io_uring_unregister_files(&ring);
	if (!ret)
		ret = files_table(&ring, four, 4);
	tally_check(&tl, "shrink_ret", "%d", ret);
	lt_finish(sc, "shrink", fd, 1);
	close(fd);
	bpf_link__destroy(link);
	io_uring_queue_exit(&ring);
	tally_timing(&tl);
}

/*
 * The link destroyed and the ring fd closed in the middle of a walk: the
 * ring is freed under the iterator fd, whose walk ends after the object
 * read before, with no final call.
 */
static void lt_ring_closed_midwalk(void)
{
	const char *sc = "lifetime-ring-closed-midwalk";
	struct target t;
	struct tally tl;
	int fd;

	tally_init(&tl, sc, 1);
	if (target_init(&t, "lm", false)) {
		tally_check(&tl, "setup", "0");
		return;
	}
	print_refs(sc, &t);
	fd = lt_begin(t.link[IT_BUF]);
	target_destroy_links(&t);
	target_close_ring(&t);
	tally_check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	lt_finish(sc, "midwalk", fd, 1);
	close(fd);
	target_free(&t, NULL);
	tally_timing(&tl);
}

/*
 * A read of the ring's own iterator submitted through io-wq, then the
 * iterator fd, the links and the ring fd closed before it completes: the
 * close tears the ring down, cancelling the request or letting it finish,
 * and the ring is freed.
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
		tally_check(&tl, "setup", "0");
		return;
	}
	fd = iter_open(t.link[IT_FILE], false);
	sqe = io_uring_get_sqe(&t.ring);
	io_uring_prep_read(sqe, fd, lt_text, sizeof(lt_text), 0);
	ret = ring_submit(&t.ring, 1);
	tally_check(&tl, "submit_ret", "%d", ret);
	close(fd);
	target_destroy_links(&t);
	target_close_ring(&t);
	tally_check(&tl, "freed", "%d", ring_freed(t.pipe_rd, wait_s(10) * 1000));
	target_free(&t, NULL);
	tally_timing(&tl);
}

struct lt_reader {
	int fds[4];
	int kinds[4];
	struct tally *tl;
	atomic_bool *go;
};

/*
 * Lines of objects and then one final call, last; or, as the ring may have
 * gone before the walk was over, lines of objects only (maybe none).
 */
static bool well_formed(const char *text, long len)
{
	const char *line = text, *end = text + len;
	int ends = 0;

	if (len < 0 || (len && text[len - 1] != '\n'))
		return false;
	while (line < end) {
		const char *nl = memchr(line, '\n', end - line);

		if (!strncmp(line, "end ", 4))
			ends++;
		else if (ends || (strncmp(line, "buf seq=", 8) && strncmp(line, "file ring=", 10)))
			return false;
		line = nl + 1;
	}
	return ends <= 1;
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
			if (n < 0 && errno == ESTALE && r->kinds[i] == IT_BUF) {
				/* it began in the buffer table unregistered under it */
				done[i] = true;
				left--;
				atomic_fetch_add(&r->tl->ok, 1);
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
				tally_bad(r->tl, "what=chunked-walk it=%s res=%zd len=%ld",
					  it_name[r->kinds[i]], n < 0 ? -errno : n, len[i]);
			}
		}
		sleep_us(300);
	}
	return NULL;
}

/* One stress round: ring @t torn down while @rd reads it; 1 when it was freed */
static int lt_stress_round(struct target *t, struct lt_reader *rd)
{
	struct iovec iov = { t->mem + 2 * PAGE_SZ, PAGE_SZ };
	atomic_bool go = false;
	pthread_t thr;
	int i;

	for (i = 0; i < 4; i++) {
		rd->kinds[i] = i % 2;
		rd->fds[i] = iter_open(t->link[i % 2], false);
	}
	rd->go = &go;
	pthread_create(&thr, NULL, lt_read_slowly, rd);
	atomic_store(&go, true);
	files_set(&t->ring, 0, NULL);
	files_set(&t->ring, 1, "lt-s1");
	sleep_us(500);
	io_uring_unregister_buffers(&t->ring);
	sleep_us(500);
	io_uring_register_buffers(&t->ring, &iov, 1);
	files_set(&t->ring, 2, NULL);
	sleep_us(500);
	bpf_link__destroy(t->link[IT_BUF]);
	t->link[IT_BUF] = NULL;
	target_close_ring(t);
	sleep_us(500);
	bpf_link__destroy(t->link[IT_FILE]);
	t->link[IT_FILE] = NULL;
	pthread_join(thr, NULL);
	for (i = 0; i < 4; i++)
		close(rd->fds[i]);
	return ring_freed(t->pipe_rd, wait_s(10) * 1000);
}

/*
 * Rounds of: a fresh ring, four iterator fds read in 64-byte pieces by
 * another thread while this one clears and replaces files, unregisters and
 * re-registers the buffers, destroys the links and closes the ring. Every
 * walk must come out well formed (lines of objects, then one final call
 * unless the ring went first) or, a buffer walk under way when the buffers
 * were unregistered, fail with ESTALE; every other piece be data or
 * EDEADLK; and every ring be freed at the end.
 */
static void lt_stress(long rounds)
{
	struct tally tl;
	long r, freed = 0;

	tally_init(&tl, "lifetime-stress", rounds);
	step(tl.name);
	for (r = 0; r < rounds; r++) {
		struct lt_reader rd = { .tl = &tl };
		struct target t;
		int nfd;

		if (target_init(&t, "ls", false)) {
			atomic_fetch_add(&tl.failed, 1);
			tally_bad(&tl, "what=setup round=%ld", r);
			break;
		}
		nfd = lt_stress_round(&t, &rd);
		freed += nfd;
		if (!nfd)
			tally_bad(&tl, "what=not-freed round=%ld", r);
		target_free(&t, NULL);
	}
	tally_check(&tl, "freed_rings", "%ld", freed);
	tally_print(&tl);
}

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_lifetime", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
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
	lt_stress(rounds < 1 ? 1 : rounds);
	iter_unload();
	return t_pass();
}
