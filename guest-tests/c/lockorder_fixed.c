// SPDX-License-Identifier: GPL-2.0
/*
 * Description: iterator fds and links as fixed files. A link or iterator
 * fd bound to a ring pins the ring, so the series refuses it as a fixed
 * file wherever a ring fd is refused (patch 5), with -EBADF: a ring cannot
 * read its own iterator as a fixed file at all. Every way in is tried, for
 * both iterators, blocking and O_NONBLOCK, for the ring's own iterators and
 * another ring's, and for the links themselves; the slot stays empty
 * (reading it as a fixed file gives -EBADF) and the ring's file iterator
 * shows the table exactly as before.
 *
 *   lockorder_fixed [tscale=F]
 *
 * Scenario self-fixed-file, counted as "refused";
 * test_lock_ordering.py::test_self_read_fixed_file_refused asserts it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

/* Count @res: -EBADF is the refusal every path must give. */
static void refusal(struct tally *tl, int res, const char *path, const char *what)
{
	if (res == -EBADF) {
		atomic_fetch_add(&tl->refused, 1);
	} else {
		atomic_fetch_add(&tl->failed, 1);
		tally_bad(tl, "path=%s fd=%s res=%d expected=%d", path, what, res, -EBADF);
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

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Every way of putting @fd into @ring's file table (or @bare's, as a whole table) */
static void try_fixed(struct tally *tl, struct io_uring *ring, struct io_uring *bare,
		      int fd, int empty_slot, const char *what)
{
	int ret, idx;

	ret = io_uring_register_files_update(ring, empty_slot, &fd, 1);
	refusal(tl, ret, "register-files-update", what);
	ret = sqe_files_update(ring, &fd, empty_slot);
	refusal(tl, ret, "op-files-update", what);
	idx = fd;
	ret = sqe_files_update(ring, &idx, IORING_FILE_INDEX_ALLOC);
	refusal(tl, ret, "op-files-update-alloc", what);
	/* a whole table with it, on a ring that has none */
	ret = io_uring_register_files(bare, &fd, 1);
	if (ret == 0)
		io_uring_unregister_files(bare);
	refusal(tl, ret, "register-files", what);
}

static enum t_exit test_fixed(void)
{
	static char buf[TEXT_MAX], before[TEXT_MAX];
	struct target t[2];
	struct io_uring bare;
	struct tally tl;
	struct io_uring *ring = &t[0].ring;
	int o, k, nb, ret, fd;
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
				snprintf(what, sizeof(what), "%.15s-%s-%s", o ? "b" : "a",
					 it_name[k],
					 nb == 2 ? "link" : nb ? "iter-nonblock" : "iter");
				try_fixed(&tl, ring, &bare, fd, empty_slot, what);
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
	tally_check(&tl, "table_unchanged", "%d", len > 0 && !strcmp(buf, before));
	tally_check(&tl, "file_walk_lines", "%d", len > 0 ? count_lines(buf) : -1);
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
