// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a ring reads its own iterators through io-wq. Without
 * O_NONBLOCK the file cannot be read inline: io_uring punts the read to
 * io-wq, whose worker holds no ->uring_lock, and every walk completes. The
 * same with O_NONBLOCK and IOSQE_ASYNC, and on an SQPOLL ring. The worker
 * can still find the lock taken by the submitter (or the SQ thread)
 * finishing the batch: the documented "busy" -EDEADLK, retried at most
 * BUSY_RETRIES times per walk and counted as edeadlk.
 *
 *   lockorder_iowq [rounds=N] [tscale=F]
 *
 * Scenarios self-iowq-*, self-iowq-sqpoll-*, self-async-* (buf and file);
 * test_lock_ordering.py::test_self_read_iowq_succeeds asserts them.
 */
#include <errno.h>
#include <unistd.h>

#include "guest.h"

#define BUSY_RETRIES	200

/*
 * Read @fd through @ring to EOF with IORING_OP_READ, retrying -EDEADLK up
 * to BUSY_RETRIES times. Counts every CQE: -EDEADLK as edeadlk; the walk
 * once, as ok when it is complete and equal to the reference.
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
		if (res == 0) {
			classify(tl, t, kind, buf, len, "iowq-walk");
			return;
		}
		if (res < 0) {
			classify(tl, t, kind, buf, res == -EDEADLK ? -EBUSY : res,
				 "iowq-read");
			return;
		}
		len += res;
		if (len + 1 >= (long)sizeof(buf)) {
			classify(tl, t, kind, buf, -E2BIG, "iowq-read");
			return;
		}
	}
}

static enum t_exit test_iowq(long rounds)
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

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_iowq", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_iowq(rounds < 1 ? 1 : rounds);
	iter_unload();
	return ret;
}
