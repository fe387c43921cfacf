// SPDX-License-Identifier: GPL-2.0
/*
 * The counter replay (README.md, "Restore", counters). No 6.12 UAPI sets
 * a ring's kernel-owned counters: a new ring starts with cached_sq_head
 * and cached_cq_tail at 0. They are moved to the image's values by doing
 * what moved them, cheapest first (counters.c plans it, from wherever
 * the new ring's counters start):
 *
 *   NOP                  SQ head +1, CQ tail +1
 *   dropped SQ entry     SQ head +1 (an SQ array index >= sq_entries;
 *                        sq_dropped +1 and cq_extra -1, both put back)
 *   MSG_RING from a      CQ tail +1 (an aux CQE: cq_extra +1)
 *   helper ring
 *
 * IOSQE_CQE_SKIP_SUCCESS would move the SQ head alone too, but it sets
 * drain_disabled for good, and the restored ring would then fail every
 * IOSQE_IO_DRAIN the application submits with -EOPNOTSUPP.
 *
 * The ring was drained when dumped (cached_sq_head + cq_extra ==
 * cached_cq_tail), and each step above keeps that sum, so cq_extra comes
 * out equal too. The CQ is reaped as it fills; the caller then writes the
 * image's CQEs, SQ array, SQEs and application-owned counters over it.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "restore.h"

static uint32_t load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static unsigned int enter_flags(const struct ucr_work *w)
{
	return w->p->flags & IORING_SETUP_SQPOLL ? IORING_ENTER_SQ_WAKEUP : 0;
}

/* Waits until the CQ tail reaches @tail, then reaps everything. */
static int reap_to(struct ucr_work *w, uint32_t tail, struct ucr_err *err)
{
	while (load(w->cq_tail) != tail) {
		uint32_t want = tail - load(w->cq_tail);

		if (want > w->p->cq_entries)
			return ucr_errf(err, -EPROTO,
					"replay: the CQ tail went past %u (now %u): something else posts to the ring",
					tail, load(w->cq_tail));
		if (sys_enter(w->fd, 0, want, IORING_ENTER_GETEVENTS | enter_flags(w)) < 0 &&
		    errno != EINTR && errno != EAGAIN && errno != EBUSY)
			return ucr_errf(err, -errno, "replay: waiting for CQEs: %s", strerror(errno));
	}
	store(w->cq_head, tail);
	return 0;
}

static void progress(bool on, uint64_t *last, const char *what, uint64_t done,
		     uint64_t total)
{
	uint64_t now = ucr_now_us();

	if (!on || now - *last < 1000000)
		return;
	*last = now;
	fprintf(stderr, "uringcr: replay: %" PRIu64 " of %" PRIu64 " %s\n", done, total, what);
}

static int nops(struct ucr_work *w, uint64_t n, bool verbose, struct ucr_err *err)
{
	uint32_t mask = w->p->sq_entries - 1, batch = w->p->sq_entries, i;
	uint64_t done = 0, last = ucr_now_us();

	if (batch > w->p->cq_entries)
		batch = w->p->cq_entries;
	memset(w->sqes, 0, (size_t)w->p->sq_entries * w->sqe_size);	/* IORING_OP_NOP */
	for (i = 0; w->sq_array && i <= mask; i++)
		w->sq_array[i] = i;
	while (done < n) {
		uint32_t b = n - done < batch ? n - done : batch;
		uint32_t tail = load(w->sq_tail) + b;
		int ret;

		store(w->sq_tail, tail);
		ret = sys_enter(w->fd, b, 0, enter_flags(w));
		if (ret < 0 || (!(w->p->flags & IORING_SETUP_SQPOLL) && (uint32_t)ret != b))
			return ucr_errf(err, ret < 0 ? -errno : -EPROTO,
					"replay: submitting %u NOPs: %s", b,
					ret < 0 ? strerror(errno) : "fewer were taken");
		ret = reap_to(w, load(w->cq_head) + b, err);
		if (ret)
			return ret;
		done += b;
		progress(verbose, &last, "NOPs", done, n);
	}
	return 0;
}

/* One SQ entry at a time: io_submit_sqes() stops at a dropped one. */
static int drops(struct ucr_work *w, uint64_t n, struct ucr_err *err)
{
	uint32_t mask = w->p->sq_entries - 1;
	uint64_t i;

	if (!w->sq_array)
		return ucr_errf(err, -EOPNOTSUPP,
				"replay: the SQ head must move %" PRIu64 " past the CQ tail, which takes SQ array entries, and the ring has none (IORING_SETUP_NO_SQARRAY)",
				n);
	for (i = 0; i < n; i++) {
		uint32_t tail = load(w->sq_tail);
		uint64_t deadline = ucr_now_us() + 5000000;

		w->sq_array[tail & mask] = w->p->sq_entries;
		store(w->sq_tail, tail + 1);
		while (load(w->sq_head) != tail + 1) {
			if (sys_enter(w->fd, 1, 0, enter_flags(w)) < 0 && errno != EINTR &&
			    errno != EAGAIN && errno != EBUSY)
				return ucr_errf(err, -errno, "replay: dropping an SQ entry: %s",
						strerror(errno));
			if (ucr_now_us() > deadline)
				return ucr_errf(err, -ETIMEDOUT,
						"replay: the kernel did not consume a dropped SQ entry in 5 s");
		}
	}
	return 0;
}

static int msgs(struct ucr_work *w, uint64_t n, bool verbose, struct ucr_err *err)
{
	struct io_uring_params hp = { 0 };
	struct ucr_work h = { .fd = -1 };
	uint32_t batch, i;
	uint64_t done = 0, last = ucr_now_us();
	int ret = 0;

	h.fd = sys_setup(n < 4096 ? (unsigned int)n : 4096, &hp);
	if (h.fd < 0)
		return ucr_errf(err, -errno, "replay: a helper ring for MSG_RING: %s",
				strerror(errno));
	h.p = &hp;
	ret = ucr_work_map(&h, err);
	if (ret)
		goto out;
	batch = hp.sq_entries < w->p->cq_entries ? hp.sq_entries : w->p->cq_entries;
	memset(h.sqes, 0, (size_t)hp.sq_entries * h.sqe_size);
	for (i = 0; i < hp.sq_entries; i++) {
		struct io_uring_sqe *sqe = (struct io_uring_sqe *)h.sqes + i;

		sqe->opcode = IORING_OP_MSG_RING;
		sqe->fd = w->fd;
		sqe->addr = IORING_MSG_DATA;
		h.sq_array[i] = i;
	}
	while (done < n) {
		uint32_t b = n - done < batch ? n - done : batch;

		store(h.sq_tail, load(h.sq_tail) + b);
		ret = sys_enter(h.fd, b, 0, 0);
		if (ret != (int)b) {
			ret = ucr_errf(err, ret < 0 ? -errno : -EPROTO,
				       "replay: submitting %u MSG_RING: %s", b,
				       ret < 0 ? strerror(errno) : "fewer were taken");
			goto out;
		}
		ret = reap_to(&h, load(h.cq_head) + b, err);
		if (!ret)
			ret = reap_to(w, load(w->cq_head) + b, err);
		if (ret)
			goto out;
		for (i = 0; i < b; i++) {
			const struct io_uring_cqe *c = (const struct io_uring_cqe *)h.cqes +
				((load(h.cq_head) - b + i) & (hp.cq_entries - 1));

			if (c->res < 0) {
				ret = ucr_errf(err, c->res, "replay: MSG_RING to the new ring: %s",
					       strerror(-c->res));
				goto out;
			}
		}
		done += b;
		progress(verbose, &last, "MSG_RING posts", done, n);
	}
out:
	ucr_work_unmap(&h);
	close(h.fd);
	return ret;
}

/*
 * An SQPOLL thread posts a batch's CQEs (io_submit_state_end()) before
 * io_commit_sqring() stores the new SQ head, so a reaped batch does not
 * mean the shared SQ head has moved yet. Slots are safe to reuse (the
 * kernel's cached head is past them), but the final check in ucr_replay()
 * must wait for it: up to 5 s, then the check reports where the head is.
 */
static void sq_settle(struct ucr_work *w, uint32_t head)
{
	uint64_t deadline = ucr_now_us() + 5000000;

	if (!(w->p->flags & IORING_SETUP_SQPOLL))
		return;
	while (load(w->sq_head) != head && ucr_now_us() < deadline)
		sched_yield();
}

int ucr_replay(struct ucr_work *w, const struct ucr_ring *r,
	       struct ucr_restore_stats *st, bool verbose, struct ucr_err *err)
{
	uint64_t n_nops, n_drops, n_msgs, t0 = ucr_now_us();
	int ret;

	ucr_replay_plan(load(w->sq_head), load(w->cq_tail), r->k.cached_sq_head,
			r->k.cached_cq_tail, &n_nops, &n_drops, &n_msgs);
	ret = nops(w, n_nops, verbose, err);
	if (!ret)
		ret = drops(w, n_drops, err);
	if (!ret && n_msgs)
		ret = msgs(w, n_msgs, verbose, err);
	st->nops = n_nops;
	st->drops = n_drops;
	st->msgs = n_msgs;
	if (!ret)
		sq_settle(w, r->k.cached_sq_head);
	st->replay_us = ucr_now_us() - t0;
	if (ret)
		return ret;
	if (load(w->sq_head) != r->k.cached_sq_head || load(w->cq_tail) != r->k.cached_cq_tail)
		return ucr_errf(err, -EPROTO,
				"replay: the counters came out at SQ head %u, CQ tail %u instead of %u, %u",
				load(w->sq_head), load(w->cq_tail), r->k.cached_sq_head,
				r->k.cached_cq_tail);
	return 0;
}

int ucr_work_map(struct ucr_work *w, struct ucr_err *err)
{
	const struct io_uring_params *p = w->p;
	int prot = PROT_READ | PROT_WRITE, fl = MAP_SHARED | MAP_POPULATE;

	w->sqe_size = p->flags & IORING_SETUP_SQE128 ? 128 : 64;
	w->cqe_size = p->flags & IORING_SETUP_CQE32 ? 32 : 16;
	w->sq_len = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
	if (p->flags & IORING_SETUP_NO_SQARRAY)
		w->sq_len = p->sq_off.flags + sizeof(uint32_t);
	w->cq_len = p->cq_off.cqes + (size_t)p->cq_entries * w->cqe_size;
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		if (w->cq_len > w->sq_len)
			w->sq_len = w->cq_len;
	}
	w->sqes_len = (size_t)p->sq_entries * w->sqe_size;
	w->sq_ring = mmap(NULL, w->sq_len, prot, fl, w->fd, IORING_OFF_SQ_RING);
	if (w->sq_ring == MAP_FAILED)
		goto fail;
	w->cq_ring = w->sq_ring;
	if (!(p->features & IORING_FEAT_SINGLE_MMAP)) {
		w->cq_ring = mmap(NULL, w->cq_len, prot, fl, w->fd, IORING_OFF_CQ_RING);
		if (w->cq_ring == MAP_FAILED)
			goto fail;
	}
	w->sqes = mmap(NULL, w->sqes_len, prot, fl, w->fd, IORING_OFF_SQES);
	if (w->sqes == MAP_FAILED)
		goto fail;
	w->sq_head = (uint32_t *)((char *)w->sq_ring + p->sq_off.head);
	w->sq_tail = (uint32_t *)((char *)w->sq_ring + p->sq_off.tail);
	w->sq_flags = (uint32_t *)((char *)w->sq_ring + p->sq_off.flags);
	w->sq_dropped = (uint32_t *)((char *)w->sq_ring + p->sq_off.dropped);
	w->sq_array = p->flags & IORING_SETUP_NO_SQARRAY ? NULL :
		      (uint32_t *)((char *)w->sq_ring + p->sq_off.array);
	w->cq_head = (uint32_t *)((char *)w->cq_ring + p->cq_off.head);
	w->cq_tail = (uint32_t *)((char *)w->cq_ring + p->cq_off.tail);
	w->cq_overflow = (uint32_t *)((char *)w->cq_ring + p->cq_off.overflow);
	w->cq_flags = (uint32_t *)((char *)w->cq_ring + p->cq_off.flags);
	w->cqes = (char *)w->cq_ring + p->cq_off.cqes;
	return 0;
fail:
	ucr_errf(err, -errno, "mapping the new ring: %s", strerror(errno));
	ucr_work_unmap(w);
	return err->code;
}

void ucr_work_unmap(struct ucr_work *w)
{
	if (w->sqes && w->sqes != MAP_FAILED)
		munmap(w->sqes, w->sqes_len);
	if (w->cq_ring && w->cq_ring != MAP_FAILED && w->cq_ring != w->sq_ring)
		munmap(w->cq_ring, w->cq_len);
	if (w->sq_ring && w->sq_ring != MAP_FAILED)
		munmap(w->sq_ring, w->sq_len);
	w->sq_ring = w->cq_ring = w->sqes = NULL;
}
