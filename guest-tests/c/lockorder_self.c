// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a ring reads its own iterators inline. IORING_OP_READ of an
 * O_NONBLOCK iterator fd is issued inline, under the ring's ->uring_lock:
 * reading the ring's own iterator must fail with -EDEADLK, every time, and
 * leave the position alone (read(2) afterwards gives the whole walk). On an
 * SQPOLL ring the SQ thread issues it, under the same lock.
 *
 *   lockorder_self [rounds=N] [tscale=F]
 *
 * Scenarios self-inline-{buf,file} and self-inline-sqpoll-{buf,file}, each
 * an "outcome" line and "check ... walk_after=<0|1>";
 * test_lock_ordering.py::test_self_read_inline_edeadlk asserts them.
 */
#include <unistd.h>

#include "guest.h"

static enum t_exit test_self(long rounds)
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
			tally_check(&tl, "walk_after", "%d",
				    len > 0 && same_walk(&t[r], k, buf, len));
			close(fd);
			tally_print(&tl);
		}
	}
	target_free(&t[0], NULL);
	target_free(&t[1], NULL);
	return t_pass();
}

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_self", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_self(rounds < 1 ? 1 : rounds);
	iter_unload();
	return ret;
}
