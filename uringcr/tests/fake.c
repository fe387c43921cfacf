// SPDX-License-Identifier: GPL-2.0
/* Rings built by hand for the host unit tests (fake.h). */
#include <stdlib.h>
#include <string.h>

#include "fake.h"

struct fake *fresh(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	unsigned int i;

	for (i = 0; i < 4; i++) {
		f->rings[i].fd = 10 + i;
		f->rings[i].sq_share = -1;
		f->rings[i].evfd = -1;
	}
	return f;
}

void buf(struct fake *f, unsigned int ring, unsigned int slot, uint64_t off,
	 uint64_t len, enum ucr_backing kind, uint64_t pfn0)
{
	struct ucr_ring *r = &f->rings[ring];
	struct ucr_buf *b = &f->bufs[ring][r->nr_used_bufs];
	uint32_t i;

	memset(b, 0, sizeof(*b));
	b->slot = slot;
	b->addr = BASE + off;
	b->len = len;
	b->backing = kind;
	b->folio_shift = 12;
	b->refs = 1;
	b->id = (ring + 1) * 100 + slot;
	b->bv = f->bv[ring][r->nr_used_bufs];
	b->nr_bvecs = (len + 4095) / 4096;
	for (i = 0; i < b->nr_bvecs; i++)
		b->bv[i] = (struct ucr_bvec){ .pfn = pfn0 + i, .len = 4096 };
	r->bufs = f->bufs[ring];
	r->nr_used_bufs++;
	r->nr_bufs = slot + 1 > r->nr_bufs ? slot + 1 : r->nr_bufs;
	if (ring + 1 > f->nr)
		f->nr = ring + 1;
}

static struct ucr_buf *at(struct fake *f, int ring, unsigned int slot)
{
	struct ucr_ring *r = &f->rings[ring];
	uint32_t i;

	for (i = 0; i < r->nr_used_bufs; i++)
		if (r->bufs[i].slot == slot)
			return &r->bufs[i];
	abort();	/* a test that shares a slot it did not fill */
}

void share(struct fake *f, unsigned int slot, int a, int b, int c)
{
	struct ucr_buf *x = at(f, a, slot), *y = at(f, b, slot), *z = c < 0 ? NULL : at(f, c, slot);
	uint32_t refs = z ? 3 : 2;

	x->refs = y->refs = refs;
	y->id = x->id;
	if (z) {
		z->refs = refs;
		z->id = x->id;
	}
}
