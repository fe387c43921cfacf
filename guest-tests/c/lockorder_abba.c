// SPDX-License-Identifier: GPL-2.0
/*
 * Description: rings A and B read each other's iterators from two threads
 * started together each round, in batches per io_uring_enter() (even ones
 * O_NONBLOCK, issued inline: own lock -> seq(other) -> trylock(other), and
 * the other ring the other way round; odd ones blocking, through io-wq),
 * while a third thread read(2)s both rings' iterators. With sqpoll=1 the
 * two SQ threads issue the inline reads. Every read must be the whole walk
 * or -EDEADLK; a CQE that never comes is a hang and fails.
 *
 *   lockorder_abba [rounds=N] [batch=2..16, even] [sqpoll=0|1] [tscale=F]
 *
 * Scenarios abba[-sqpoll]-{inline,iowq,read2};
 * test_lock_ordering.py::test_abba_cross_ring_reads asserts them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "guest.h"

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

/* One round's @batch reads, submitted at once on the own ring, and their CQEs */
static void abba_round(struct abba_side *s, int *fds, long r)
{
	struct io_uring *ring = &s->own->ring;
	int j, n;

	for (j = 0; j < s->batch; j++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		io_uring_prep_read(sqe, fds[j], s->bufs + (size_t)j * TEXT_MAX,
				   TEXT_MAX, 0);
		sqe->user_data = j;
	}
	n = ring_submit(ring, s->batch);
	if (n)
		tally_bad(s->inline_tl, "what=submit ret=%d", n);
	for (j = 0; j < s->batch; j++) {
		__u64 ud = 0;
		int res = ring_wait_one(ring, &ud);

		if (res == -ETIME) {
			atomic_store(s->hung, true);
			tally_bad(s->inline_tl, "what=cqe-wait hang=1 round=%ld", r);
			atomic_fetch_add(&s->inline_tl->failed, 1);
			break;
		}
		classify(ud % 2 ? s->iowq_tl : s->inline_tl, s->other,
			 (ud / 2) % 2, s->bufs + ud * TEXT_MAX, res,
			 ud % 2 ? "abba-iowq" : "abba-inline");
	}
}

/* Each round: @batch reads of the other ring's iterators (buf, buf, file, file, ...) */
static void *abba_side(void *arg)
{
	struct abba_side *s = arg;
	int fds[BATCH_MAX];
	long r;

	for (r = 0; r < s->rounds; r++) {
		int j;

		for (j = 0; j < s->batch; j++)
			fds[j] = iter_open(s->other->link[(j / 2) % 2], j % 2 == 0);
		pthread_barrier_wait(s->barrier);
		if (!atomic_load(s->hung))
			abba_round(s, fds, r);
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

static enum t_exit test_abba(long rounds, int batch, bool sqpoll)
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
	tally_check(&tl_inline, "batch", "%d", batch);
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

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_abba", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_abba(rounds < 1 ? 1 : rounds, t_arg_long(argc, argv, "batch", 8),
			t_arg_long(argc, argv, "sqpoll", 0));
	iter_unload();
	return ret;
}
