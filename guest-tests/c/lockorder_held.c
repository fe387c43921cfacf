// SPDX-License-Identifier: GPL-2.0
/*
 * Description: every reader meets a ->uring_lock that is held. The FUSE
 * gate (lib/fuse_gate.h) holds a ring's lock with a register call stalled
 * in a page fault; meanwhile its iterators are read every way: read(2);
 * inline on another ring (that ring's lock -> seq -> trylock(held): the
 * AB-BA order with one side held); through io-wq; inline on an SQPOLL
 * ring. Each must fail with EDEADLK at once, a NOP submitted on the held
 * ring must wait, and after the release the very same fds give the whole
 * walk (the failed reads moved nothing). A walk begun before the hold
 * returns what it had buffered, then EDEADLK, then the rest.
 *
 *   lockorder_held [rounds=N] [tscale=F]
 *
 * Scenarios held, held-released, held-midwalk; skips when FUSE cannot be
 * mounted. test_lock_ordering.py::test_held_lock_edeadlk_then_whole_walk
 * asserts them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "guest.h"

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
	pr->res = ring_submit(pr->ring, 1);
	if (!pr->res)
		pr->res = ring_wait_one(pr->ring, NULL);
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

struct tallies {
	struct tally held, after, mid;
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

static int held_fds_open(struct held_fd *hf, struct target *tg, struct io_uring *rd,
			 struct io_uring *sq)
{
	int i;

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
	return 0;
}

/* Nothing holds the lock now: the whole walk from each fd ("busy" retried, counted) */
static void held_fds_finish(struct held_fd *hf, struct target *tg, struct tally *tl)
{
	char what[96];
	long res;
	int i;

	for (i = 0; i < VIA_NR * 2; i++) {
		struct held_fd *x = &hf[i];
		int busy = 0;

		for (;;) {
			res = held_read(x);
			if (res == -EDEADLK && busy++ < 1000) {
				atomic_fetch_add(&tl->edeadlk, 1);
				sleep_us(1000);
				continue;
			}
			if (res <= 0)
				break;
			x->len += res;
		}
		snprintf(what, sizeof(what), "after-%s", via_name[x->via]);
		classify(tl, tg, x->kind, x->buf, res < 0 ? res : x->len, what);
		close(x->fd);
		free(x->buf);
	}
}

/*
 * Hold @tg's lock, then read its iterators every way: read(2); inline on
 * @rd, another ring; through io-wq on @rd; inline on the SQPOLL ring @sq.
 */
static int held_round(struct target *tg, struct io_uring *rd, struct io_uring *sq,
		      struct tallies *tl)
{
	struct held_fd hf[VIA_NR * 2];
	struct hold h;
	struct probe pr = { .ring = &tg->ring };
	static char mid_buf[TEXT_MAX];
	long mid_len, res, busy = 0;
	int i, mid_fd, ret;
	char what[96];

	if (held_fds_open(hf, tg, rd, sq))
		return -1;
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
		classify(&tl->held, tg, hf[i].kind, hf[i].buf, res, what);
	}
	res = read(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len - 1);
	tally_check(&tl->mid, "leftover_while_held", "%ld",
		    res > 0 ? 1L : res < 0 ? -errno : 0L);
	if (res > 0)
		mid_len += res;
	res = read(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len - 1);
	classify(&tl->mid, tg, IT_BUF, mid_buf, res < 0 ? -errno : res, "held-midwalk");
	/* the lock really is held: a submission on the ring waits for it */
	sleep_us(50000);
	tally_check(&tl->held, "probe_blocked", "%d", !atomic_load(&pr.done));

	ret = hold_release(&h);
	tally_check(&tl->held, "register_ret", "%d", ret);
	pthread_join(pr.thr, NULL);
	tally_check(&tl->held, "probe_res", "%d", pr.res);
	/* an SQ thread may still be dropping the lock after posting the NOP */
	sleep_us(20000);

	held_fds_finish(hf, tg, &tl->after);
	res = read_walk(mid_fd, mid_buf + mid_len, TEXT_MAX - mid_len, 0, 1000, &busy);
	atomic_fetch_add(&tl->after.edeadlk, busy);
	classify(&tl->after, tg, IT_BUF, mid_buf, res < 0 ? res : res + mid_len,
		 "after-midwalk");
	close(mid_fd);
	return 0;
}

static enum t_exit test_held(long rounds)
{
	struct target r, a, q;
	struct tallies tl;
	long i;
	int ret = 0;

	if (target_init(&r, "r", false) || target_init(&a, "a", false) ||
	    target_init(&q, "q", true))
		return t_fail("ring setup");
	if (fuse_gate_start()) {
		fuse_gate_stop();
		return t_skip("cannot mount a FUSE file system, nothing to stall ->uring_lock with");
	}
	tally_init(&tl.held, "held", rounds);
	tally_init(&tl.after, "held-released", rounds);
	tally_init(&tl.mid, "held-midwalk", rounds);
	/*
	 * r held, read by a and q; a held, read by r (the other half of the
	 * AB-BA pair); q (SQPOLL) held, read by a and r.
	 */
	for (i = 0; i < rounds && !ret; i++) {
		step("held r");
		ret = held_round(&r, &a.ring, &q.ring, &tl);
		if (!ret) {
			step("held a");
			ret = held_round(&a, &r.ring, &q.ring, &tl);
		}
		if (!ret) {
			step("held q");
			ret = held_round(&q, &a.ring, &r.ring, &tl);
		}
	}
	fuse_gate_stop();
	if (ret)
		return t_fail(ret == -2 ? "could not stall a register call on ->uring_lock" :
			      "held round setup");
	tally_print(&tl.held);
	tally_print(&tl.after);
	tally_print(&tl.mid);
	target_free(&r, NULL);
	target_free(&a, NULL);
	target_free(&q, NULL);
	return t_pass();
}

int main(int argc, char *argv[])
{
	long rounds = t_arg_long(argc, argv, "rounds", 10);
	enum t_exit ret;

	t_start("lockorder_held", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_held(rounds < 1 ? 1 : rounds);
	iter_unload();
	return ret;
}
