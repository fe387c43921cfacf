// SPDX-License-Identifier: GPL-2.0
/*
 * Description: iterator fds and links as fixed files. They hold no ring,
 * so a ring may hold them like any file, its own included: every way in
 * takes them (IORING_REGISTER_FILES_UPDATE, IORING_OP_FILES_UPDATE with a
 * slot and with IORING_FILE_INDEX_ALLOC, IORING_REGISTER_FILES), for both
 * iterators, blocking and O_NONBLOCK, of the ring's own and of another
 * ring, and the links themselves. Reading a ring's own iterator through a
 * fixed slot inline (O_NONBLOCK) is the self-read: -EDEADLK; through io-wq
 * (blocking) and another ring's inline, the walk, EDEADLK retried. Then
 * the ring, holding its own iterator fd and link, is freed by its close().
 *
 *   lockorder_fixed [tscale=F]
 *
 * Scenario self-fixed-file; test_lock_ordering.py::test_self_read_fixed_file
 * asserts it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

/* Count an install: every path must take the file. */
static void installed(struct tally *tl, int res, int want, const char *path, const char *what)
{
	if (res == want) {
		atomic_fetch_add(&tl->ok, 1);
	} else {
		atomic_fetch_add(&tl->failed, 1);
		tally_bad(tl, "path=%s fd=%s res=%d expected=%d", path, what, res, want);
	}
}

static int sqe_files_update(struct io_uring *ring, int *fd, int offset)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int ret;

	io_uring_prep_files_update(sqe, fd, 1, offset);
	ret = ring_submit(ring, 1);
	return ret ? ret : ring_wait_one(ring, NULL);
}

static int clear_slot(struct io_uring *ring, int slot)
{
	int none = -1;

	return io_uring_register_files_update(ring, slot, &none, 1);
}

/* Every way of putting @fd into @ring's file table (or @bare's, as a whole table) */
static void try_fixed(struct tally *tl, struct io_uring *ring, struct io_uring *bare,
		      int fd, int empty_slot, const char *what)
{
	int ret, idx;

	ret = io_uring_register_files_update(ring, empty_slot, &fd, 1);
	installed(tl, ret, 1, "register-files-update", what);
	clear_slot(ring, empty_slot);
	ret = sqe_files_update(ring, &fd, empty_slot);
	installed(tl, ret, 1, "op-files-update", what);
	clear_slot(ring, empty_slot);
	idx = fd;
	ret = sqe_files_update(ring, &idx, IORING_FILE_INDEX_ALLOC);
	installed(tl, ret, 1, "op-files-update-alloc", what);
	if (ret == 1)
		clear_slot(ring, idx);
	/* a whole table with it, on a ring that has none */
	ret = io_uring_register_files(bare, &fd, 1);
	installed(tl, ret, 0, "register-files", what);
	if (ret == 0)
		io_uring_unregister_files(bare);
}

/*
 * Reads @fd through @slot of @ring: the self-read inline must be -EDEADLK;
 * every other read gives the walk (EDEADLK, a busy ring, retried).
 */
static void read_fixed(struct tally *tl, struct io_uring *ring, int slot, int fd,
		       bool self_inline, const char *what)
{
	static char buf[TEXT_MAX];
	int ret, tries = 0;

	ret = io_uring_register_files_update(ring, slot, &fd, 1);
	if (ret != 1) {
		atomic_fetch_add(&tl->failed, 1);
		tally_bad(tl, "path=read-install fd=%s res=%d", what, ret);
		return;
	}
	for (;;) {
		ret = ring_read(ring, slot, buf, sizeof(buf), IOSQE_FIXED_FILE);
		if (self_inline || ret != -EDEADLK || ++tries >= 1000)
			break;
		sleep_us(1000);
	}
	clear_slot(ring, slot);
	if (self_inline ? ret == -EDEADLK : ret > 0) {
		atomic_fetch_add(self_inline ? &tl->edeadlk : &tl->ok, 1);
		return;
	}
	atomic_fetch_add(&tl->failed, 1);
	tally_bad(tl, "path=read-fixed fd=%s res=%d expected=%s", what, ret,
		  self_inline ? "-EDEADLK" : "the walk");
}

static enum t_exit test_fixed(void)
{
	struct target t[2];
	struct io_uring bare;
	struct tally tl;
	struct io_uring *ring = &t[0].ring;
	int o, k, nb, fd, fds[2];
	const int empty_slot = 1;	/* target_init leaves slot 1 empty */

	if (target_init(&t[0], "a", false) || target_init(&t[1], "b", false) ||
	    ring_setup(&bare, 8, false))
		return t_fail("ring setup");
	tally_init(&tl, "self-fixed-file", 1);
	step(tl.name);
	for (o = 0; o < 2; o++) {		/* ring a's own iterators, then b's */
		for (k = 0; k < 2; k++) {
			for (nb = 0; nb < 3; nb++) {	/* blocking, O_NONBLOCK, the link */
				char what[96];

				fd = nb == 2 ? bpf_link__fd(t[o].link[k]) :
					       iter_open(t[o].link[k], nb);
				if (fd < 0)
					return t_fail("iterator fd");
				snprintf(what, sizeof(what), "%.15s-%s-%s", o ? "b" : "a",
					 it_name[k],
					 nb == 2 ? "link" : nb ? "iter-nonblock" : "iter");
				try_fixed(&tl, ring, &bare, fd, empty_slot, what);
				if (nb != 2) {
					read_fixed(&tl, ring, empty_slot, fd, !o && nb, what);
					close(fd);
				}
			}
		}
	}
	/*
	 * ring a holding its own iterator fd (in the empty slot) and link (in
	 * slot 0, a memfd's; slot 3 holds the pipe that tells when the ring is
	 * freed): its close() frees it
	 */
	fds[0] = iter_open(t[0].link[IT_FILE], true);
	fds[1] = bpf_link__fd(t[0].link[IT_BUF]);
	tally_check(&tl, "held_own", "%d",
		    io_uring_register_files_update(ring, empty_slot, &fds[0], 1) == 1 &&
		    io_uring_register_files_update(ring, 0, &fds[1], 1) == 1);
	if (fds[0] >= 0)
		close(fds[0]);
	target_destroy_links(&t[0]);
	target_close_ring(&t[0]);
	tally_check(&tl, "freed_holding_own", "%d", ring_freed(t[0].pipe_rd, wait_s(10) * 1000));
	tally_print(&tl);
	io_uring_queue_exit(&bare);
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("lockorder_fixed", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_fixed();
	iter_unload();
	return ret;
}
