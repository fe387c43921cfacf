// SPDX-License-Identifier: GPL-2.0
/*
 * Buffers shared between the rings of an image (README.md, "Shared
 * buffers"). In 6.12 only IORING_REGISTER_CLONE_BUFFERS shares a buffer:
 * it copies a ring's whole table into a ring that has none, slot for slot
 * and with its size; IORING_REGISTER_BUFFERS_UPDATE later replaces single
 * slots with new buffers. So a shared buffer has the same slot in every ring
 * that holds it, and the restore rebuilds the sharing the same way: a ring
 * clones the table of the earlier ring it shares the most with, then
 * replaces the slots where it differs.
 *
 * The image knows a buffer by its id (the io_mapped_ubuf's address) and
 * its reference count: a buffer is shared within the image when as many of
 * its rings hold it as it has references. The same plan decides the dump's
 * refusal (refuse.c) and the restore's calls (restore.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

const struct ucr_buf *ucr_buf_at(const struct ucr_ring *r, uint32_t slot)
{
	uint32_t lo = 0, hi = r->nr_used_bufs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->bufs[mid].slot == slot)
			return &r->bufs[mid];
		if (r->bufs[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Does ring @r hold buffer @b (the same id at the same slot)? */
static bool holds(const struct ucr_ring *r, const struct ucr_buf *b)
{
	const struct ucr_buf *o = ucr_buf_at(r, b->slot);

	return o && o->id == b->id;
}

int ucr_why(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -EOPNOTSUPP;
}

/* Every reference of every shared buffer of ring @k is a ring of the image. */
static int all_inside(const struct ucr_ring *rings, unsigned int nr, unsigned int k,
		      char *why, size_t size)
{
	const struct ucr_ring *r = &rings[k];
	uint32_t i;

	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];
		unsigned int j, n = 0;

		if (b->refs <= 1)
			continue;
		for (j = 0; j < nr; j++)
			n += holds(&rings[j], b);
		if (n != b->refs)
			return ucr_why(why, size,
				      "buffer slot %u has %u references, and %u ring%s of the image hold%s it: the others are rings outside the image (a ring whose fd went to another process, a ring left out by --fd); dump the rings that share it together",
				      b->slot, b->refs, n, n == 1 ? "" : "s", n == 1 ? "s" : "");
	}
	return 0;
}

int ucr_share_plan(const struct ucr_ring *rings, unsigned int nr, unsigned int k,
		   struct ucr_share *sh, char *why, size_t size)
{
	const struct ucr_ring *r = &rings[k];
	unsigned int j, best_n = 0;
	uint32_t i;
	int ret;

	sh->src = -1;
	sh->cloned = calloc(r->nr_used_bufs ? r->nr_used_bufs : 1, sizeof(*sh->cloned));
	if (!sh->cloned)
		return -ENOMEM;
	ret = all_inside(rings, nr, k, why, size);
	if (ret)
		return ret;
	/* the earlier ring, of the same table size, holding the most of ours */
	for (j = 0; j < k; j++) {
		unsigned int n = 0;

		if (rings[j].nr_bufs != r->nr_bufs)
			continue;
		for (i = 0; i < r->nr_used_bufs; i++)
			n += r->bufs[i].refs > 1 && holds(&rings[j], &r->bufs[i]);
		if (n > best_n) {
			best_n = n;
			sh->src = j;
		}
	}
	/* and every buffer we share with an earlier ring must come with it */
	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		if (b->refs <= 1)
			continue;
		if (sh->src >= 0 && holds(&rings[sh->src], b)) {
			sh->cloned[i] = true;
			continue;
		}
		for (j = 0; j < k; j++) {
			if (!holds(&rings[j], b))
				continue;
			if (sh->src < 0)
				return ucr_why(why, size,
					      "buffer slot %u is shared with ring fd %d, whose table has %u slots and this ring's %u: IORING_REGISTER_CLONE_BUFFERS copies a table with its size, so 6.12 has no call that rebuilds this",
					      b->slot, rings[j].fd, rings[j].nr_bufs, r->nr_bufs);
			return ucr_why(why, size,
				      "buffer slot %u is shared with ring fd %d, but the ring's other shared buffers are ring fd %d's: IORING_REGISTER_CLONE_BUFFERS copies one ring's whole table, so 6.12 cannot rebuild sharing with two rings in this order",
				      b->slot, rings[j].fd, rings[sh->src].fd);
		}
	}
	return 0;
}

void ucr_share_free(struct ucr_share *sh)
{
	free(sh->cloned);
	sh->cloned = NULL;
}
