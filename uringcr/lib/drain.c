// SPDX-License-Identifier: GPL-2.0
/*
 * The drain (README.md, "What a dump does", 3): wait until each ring meets
 * io_uring's own IOSQE_IO_DRAIN condition, read under uring_lock by the
 * iterator; name what is still in flight when the bound passes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi.h"

#include "dumper.h"
#include "probe.h"

static const char *op_name(unsigned int op)
{
	static const char *const names[] = {
		[IORING_OP_NOP] = "NOP", [IORING_OP_READV] = "READV",
		[IORING_OP_WRITEV] = "WRITEV", [IORING_OP_FSYNC] = "FSYNC",
		[IORING_OP_READ_FIXED] = "READ_FIXED", [IORING_OP_WRITE_FIXED] = "WRITE_FIXED",
		[IORING_OP_POLL_ADD] = "POLL_ADD", [IORING_OP_SENDMSG] = "SENDMSG",
		[IORING_OP_RECVMSG] = "RECVMSG", [IORING_OP_TIMEOUT] = "TIMEOUT",
		[IORING_OP_ACCEPT] = "ACCEPT", [IORING_OP_CONNECT] = "CONNECT",
		[IORING_OP_READ] = "READ", [IORING_OP_WRITE] = "WRITE",
		[IORING_OP_SEND] = "SEND", [IORING_OP_RECV] = "RECV",
	};

	if (op < sizeof(names) / sizeof(names[0]) && names[op])
		return names[op];
	return "op";
}

/* "READ x2, POLL_ADD" from the PollList of the ring's fdinfo, if it shows any. */
static void poll_ops(struct dumper *d, int owner_fd, char *out, size_t size)
{
	unsigned int count[256] = {};
	char path[64], line[256];
	size_t o = 0;
	FILE *f;
	int in_list = 0;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", d->t.pid, owner_fd);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned int op;

		if (!strncmp(line, "PollList:", 9))
			in_list = 1;
		else if (in_list && sscanf(line, " op=%u,", &op) == 1 && op < 256)
			count[op]++;
		else if (in_list && line[0] != ' ')
			in_list = 0;
	}
	fclose(f);
	for (unsigned int op = 0; op < 256 && o + 32 < size; op++) {
		if (!count[op])
			continue;
		o += snprintf(out + o, size - o, "%s%s(%u)", o ? ", " : "", op_name(op), op);
		if (count[op] > 1)
			o += snprintf(out + o, size - o, " x%u", count[op]);
	}
}

static uint32_t inflight(const struct ucr_ring_rec *k)
{
	/*
	 * A request completed with IOSQE_CQE_SKIP_SUCCESS leaves the count
	 * one high for good, and io_uring stops keeping it (drain_disabled):
	 * such a ring is refused (cqe-skip), there is nothing to wait for.
	 */
	if (k->drain_disabled)
		return 0;
	/* io_uring's own IOSQE_IO_DRAIN condition (req_need_defer()) */
	return k->cached_sq_head + k->cq_extra - k->cached_cq_tail;
}

static int ring_record(struct dumper *d, size_t i, struct ucr_ring_rec *k)
{
	struct ucr_bvec_rec *bv;
	char what[96];
	size_t n;
	int ret;

	snprintf(what, sizeof(what), "process %d, ring fd %d", d->t.pid, d->owner_fds[i]);
	ret = ucr_probe_bufs(d->probe, d->fds[i], d->o->lock_ms, k, &bv, &n,
			     &d->rep->stats.edeadlk_retries, what, d->err);
	if (!ret)
		free(bv);
	return ret;
}

/*
 * Waits until no ring has requests in flight. A stopped task runs no
 * task_work, so with SIGSTOP the owner is let run for a moment between
 * looks; the cgroup freezer lets task_work run, so there it only waits.
 */
int ucr_drain(struct dumper *d)
{
	uint64_t deadline = ucr_now_us() + (uint64_t)d->o->drain_ms * 1000;
	unsigned int ms = 1;
	int ret;

	d->t_drain0 = ucr_now_us();
	for (;;) {
		size_t busy = 0, i;

		for (i = 0; i < d->nr; i++) {
			ret = ring_record(d, i, &d->k0[i]);
			if (ret)
				return ret;
			if (inflight(&d->k0[i]))
				busy++;
		}
		if (!busy)
			break;
		if (ucr_now_us() >= deadline) {
			for (i = 0; i < d->nr; i++) {
				char ops[256];
				uint32_t n = inflight(&d->k0[i]);

				if (!n)
					continue;
				poll_ops(d, d->owner_fds[i], ops, sizeof(ops));
				ucr_refuse(d->rep, "in-flight", d->owner_fds[i],
					   "%u request%s still in flight after %u ms%s%s%s: a dump carries no in-flight request; dump when they complete, cancel them, or wait longer (--drain-timeout)",
					   n, n == 1 ? "" : "s", d->o->drain_ms,
					   ops[0] ? " (waiting on poll: " : "", ops,
					   ops[0] ? ")" : d->k0[i].timeouts_pending ? " (timeouts pending)" : "");
			}
			break;
		}
		if (d->o->freeze == UCR_FREEZE_SIGSTOP && d->fz.frozen) {
			ret = ucr_thaw(&d->fz, d->err);
			if (!ret)
				ucr_pause_ms(ms);
			if (!ret)
				ret = ucr_freeze(&d->fz, &d->t, d->o->freeze, d->err);
			if (ret)
				return ret;
		} else {
			ucr_pause_ms(ms);
		}
		if (ms < 64)
			ms *= 2;
	}
	d->t_drain1 = ucr_now_us();
	return 0;
}
