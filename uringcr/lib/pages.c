// SPDX-License-Identifier: GPL-2.0
/*
 * The buffers' memory over the rings of one image (README.md, "Buffers
 * over the same pages"). Rings that each registered the same memory hold
 * buffer objects of their own over the same pages (unlike a clone,
 * share.c). Their restore maps those pages once, by the first ring that
 * needs them, and the later rings register what is mapped there. A buffer
 * the owner had unmapped after registering it (UCR_BACK_GONE) is mapped
 * for the registration and unmapped after it; in a restore of the whole
 * image by the last ring that pins the same pages, so that every ring
 * registers the same pages again, as in the owner.
 *
 * The plan follows the rings in the image's order, as the restore sets
 * them up, and keeps what is mapped after each. Pages are told apart by
 * the pfns of the image's bvecs: two buffers mapped at one address at the
 * dump pin the same pages; two gone ones pin the same pages only if their
 * pfns say so. What one process cannot map at one time is refused
 * (buffer-pages, refuse.c): at a ring's turn, a gone buffer where memory
 * of other pages is mapped, or a mapped one where gone pages still wait
 * for a later ring.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pages.h"

#define SOME_SAME	0x1
#define SOME_DIFFER	0x2

static uint64_t page_down(uint64_t a)
{
	return a & ~4095ULL;
}

static uint64_t page_up(uint64_t a)
{
	return (a + 4095) & ~4095ULL;
}

static bool gone(const struct ucr_buf *b)
{
	return b->backing == UCR_BACK_GONE;
}

static bool over(const struct ucr_buf *b, uint64_t lo, uint64_t hi)
{
	return page_down(b->addr) < hi && page_up(b->addr + b->len) > lo;
}

/* The pages of @a and @b under the 4 KiB pages both cover: SOME_* bits. */
static int compare_bufs(const struct ucr_buf *a, const struct ucr_buf *b)
{
	uint64_t a0 = page_down(a->addr), b0 = page_down(b->addr);
	uint64_t lo = a0 > b0 ? a0 : b0;
	uint64_t hi = page_up(a->addr + a->len);
	uint64_t *pa, *pb, va;
	size_t na, nb;
	int got = 0;

	if (page_up(b->addr + b->len) < hi)
		hi = page_up(b->addr + b->len);
	if (lo >= hi)
		return 0;
	pa = ucr_buf_pfns(a, &na);
	pb = ucr_buf_pfns(b, &nb);
	if (!pa || !pb) {
		free(pa);
		free(pb);
		return -ENOMEM;
	}
	for (va = lo; va < hi; va += 4096) {
		size_t i = (va - a0) >> 12, j = (va - b0) >> 12;

		if (i < na && j < nb)
			got |= pa[i] == pb[j] ? SOME_SAME : SOME_DIFFER;
	}
	free(pa);
	free(pb);
	return got;
}

/*
 * The gone buffers of rings @ra and @rb over [lo, hi), pair by pair:
 * SOME_* bits; *@xa, *@xb: the first pair that showed a bit of @want.
 */
static int compare_rings(const struct ucr_pages *pg, unsigned int ra, unsigned int rb,
			 uint64_t lo, uint64_t hi, int want,
			 const struct ucr_buf **xa, const struct ucr_buf **xb)
{
	const struct ucr_ring *A = &pg->rings[ra], *B = &pg->rings[rb];
	uint32_t i, j;
	int got = 0;

	for (i = 0; i < A->nr_used_bufs; i++) {
		const struct ucr_buf *a = &A->bufs[i];

		if (!gone(a) || !over(a, lo, hi))
			continue;
		for (j = 0; j < B->nr_used_bufs; j++) {
			const struct ucr_buf *b = &B->bufs[j];
			int c;

			if (b == a || !gone(b) || !over(b, lo, hi))
				continue;
			c = compare_bufs(a, b);
			if (c < 0)
				return c;
			if ((c & want) && !(got & want)) {
				*xa = a;
				*xb = b;
			}
			got |= c;
		}
	}
	return got;
}

static int cmp_region(const void *a, const void *b)
{
	const struct region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void ucr_pages_init(struct ucr_pages *pg, const struct ucr_ring *rings,
		    unsigned int nr_rings, bool defer)
{
	memset(pg, 0, sizeof(*pg));
	pg->rings = rings;
	pg->nr_rings = nr_rings;
	pg->defer = defer;
}

/* Ring @k's buffers that need memory, as page-aligned regions, sorted. */
static int regions_of(const struct ucr_ring *r, unsigned int k, const bool *cloned,
		      bool existing, struct region *g)
{
	unsigned int i, n = 0;

	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];
		uint64_t ps = 4096;

		if (cloned[i])	/* an earlier ring's restore placed it */
			continue;
		if (!gone(b) && existing)
			continue;
		if (b->backing == UCR_BACK_HUGETLB)
			ps = 1ULL << b->folio_shift;
		g[n] = (struct region){
			.start = b->addr & ~(ps - 1),
			.end = (b->addr + b->len + ps - 1) & ~(ps - 1),
			.kind = b->backing, .shift = b->folio_shift, .first = b,
			.ring = k, .last = k,
		};
		n++;
	}
	qsort(g, n, sizeof(*g), cmp_region);
	return n;
}

/* Overlapping regions of one ring merged: one kind, the same pages. */
static int merge_own(const struct ucr_pages *pg, unsigned int k, struct region *g,
		     unsigned int *n, char *why, size_t size)
{
	const struct ucr_buf *xa = NULL, *xb = NULL;
	unsigned int i, m = 0;

	for (i = 0; i < *n; i++) {
		struct region *prev = m ? &g[m - 1] : NULL;
		int c;

		if (!prev || g[i].start >= prev->end) {
			g[m++] = g[i];
			continue;
		}
		if (g[i].kind != prev->kind || g[i].kind == UCR_BACK_SHARED)
			return ucr_why(why, size,
				       "buffer slots %u and %u share pages but not their backing (%s, %s): one process cannot map both there at once",
				       prev->first->slot, g[i].first->slot,
				       ucr_backing_name(prev->kind), ucr_backing_name(g[i].kind));
		if (g[i].kind == UCR_BACK_GONE) {
			c = compare_rings(pg, k, k, g[i].start,
					  g[i].end < prev->end ? g[i].end : prev->end,
					  SOME_DIFFER, &xa, &xb);
			if (c < 0)
				return c;
			if (c & SOME_DIFFER)
				return ucr_why(why, size,
					       "buffer slots %u and %u lie at the same addresses with other pages, and nothing maps either (unmapped after registration): one process cannot map both there at once",
					       xa->slot, xb->slot);
		}
		if (g[i].end > prev->end)
			prev->end = g[i].end;
	}
	*n = m;
	return 0;
}

static int add_piece(struct region **v, unsigned int *n, const struct region *from,
		     uint64_t start, uint64_t end)
{
	struct region *p = realloc(*v, (*n + 1) * sizeof(**v));

	if (!p)
		return -ENOMEM;
	*v = p;
	p[*n] = *from;
	p[*n].start = start;
	p[*n].end = end;
	++*n;
	return 0;
}

/* The first of @pg's mapped regions that ends after @start. */
static unsigned int first_after(const struct ucr_pages *pg, uint64_t start)
{
	unsigned int lo = 0, hi = pg->nr_mapped;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (pg->mapped[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* May @R (ring @k) register the memory @e, mapped by an earlier ring, there? */
static int reuse(const struct ucr_pages *pg, unsigned int k, const struct region *R,
		 const struct region *e, char *why, size_t size)
{
	uint64_t lo = R->start > e->start ? R->start : e->start;
	uint64_t hi = R->end < e->end ? R->end : e->end;
	const struct ucr_buf *xa = e->first, *xb = R->first;
	int fd = pg->rings[e->ring].fd, c = 0;

	if (R->kind != UCR_BACK_GONE && e->kind != UCR_BACK_GONE) {
		if (R->kind == e->kind)
			return 0;	/* both mapped there at the dump: the same pages */
	} else if (R->kind == UCR_BACK_GONE && e->kind == UCR_BACK_GONE) {
		c = compare_rings(pg, e->ring, k, lo, hi, SOME_DIFFER, &xa, &xb);
		if (c < 0)
			return c;
		if (c == SOME_SAME)
			return 0;
	}
	return ucr_why(why, size,
		       "buffer slot %u (%s) lies at 0x%" PRIx64 "-0x%" PRIx64 " with other pages than buffer slot %u of ring fd %d (%s), whose memory is mapped there at this ring's turn: one process cannot map both there at once",
		       xb->slot, ucr_backing_name(xb->backing), lo, hi, xa->slot, fd,
		       ucr_backing_name(xa->backing));
}

/* @R without the memory earlier rings mapped, in pieces appended to *@v. */
static int subtract(const struct ucr_pages *pg, unsigned int k, const struct region *R,
		    struct region **v, unsigned int *n, char *why, size_t size)
{
	const struct ucr_buf *xa = NULL, *xb = NULL;
	uint64_t cur = R->start;
	unsigned int i;
	int ret;

	/* pages a ring's restore unmapped again cannot be mapped a second time */
	for (i = 0; R->kind == UCR_BACK_GONE && i < pg->nr_unmapped; i++) {
		const struct region *e = &pg->unmapped[i];

		if (e->start >= R->end || e->end <= R->start)
			continue;
		ret = compare_rings(pg, e->ring, k, R->start, R->end, SOME_SAME, &xa, &xb);
		if (ret < 0)
			return ret;
		if (ret & SOME_SAME)
			return ucr_why(why, size,
				       "buffer slot %u pins the pages of buffer slot %u of ring fd %d, which nothing maps, and that ring's restore unmapped them again: restore the rings together (ucr_restore_image()), so that the pages stay until the last ring has them",
				       xb->slot, xa->slot, pg->rings[e->ring].fd);
	}
	for (i = first_after(pg, R->start); i < pg->nr_mapped; i++) {
		const struct region *e = &pg->mapped[i];

		if (e->start >= R->end)
			break;
		ret = reuse(pg, k, R, e, why, size);
		if (ret)
			return ret;
		if (e->start > cur && (ret = add_piece(v, n, R, cur, e->start)))
			return ret;
		if (e->end > cur)
			cur = e->end;
	}
	return cur < R->end ? add_piece(v, n, R, cur, R->end) : 0;
}

int ucr_pages_plan(const struct ucr_pages *pg, unsigned int k, const bool *cloned,
		   bool existing, struct region **own, unsigned int *nr_own,
		   char *why, size_t size)
{
	const struct ucr_ring *r = &pg->rings[k];
	const struct ucr_buf *xa, *xb;
	struct region *g, *v = NULL;
	unsigned int i, j, n, nv = 0;
	int ret;

	*own = NULL;
	*nr_own = 0;
	g = calloc(r->nr_used_bufs ? r->nr_used_bufs : 1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	n = regions_of(r, k, cloned, existing, g);
	ret = merge_own(pg, k, g, &n, why, size);
	for (i = 0; !ret && i < n; i++)
		ret = subtract(pg, k, &g[i], &v, &nv, why, size);
	free(g);
	/* gone pages stay mapped for the last later ring that pins them too */
	for (i = 0; !ret && pg->defer && i < nv; i++) {
		if (v[i].kind != UCR_BACK_GONE)
			continue;
		for (j = k + 1; j < pg->nr_rings && ret >= 0; j++) {
			ret = compare_rings(pg, k, j, v[i].start, v[i].end, SOME_SAME, &xa, &xb);
			if (ret > 0 && (ret & SOME_SAME))
				v[i].last = j;
		}
		ret = ret < 0 ? ret : 0;
	}
	if (ret) {
		free(v);
		return ret;
	}
	*own = v;
	*nr_own = nv;
	return 0;
}

int ucr_pages_commit(struct ucr_pages *pg, unsigned int k, const struct region *own,
		     unsigned int nr_own)
{
	unsigned int total = pg->nr_mapped + nr_own, i, nm = 0, nu = pg->nr_unmapped;
	struct region *m = calloc(total ? total : 1, sizeof(*m));
	struct region *u = realloc(pg->unmapped, (nu + total + 1) * sizeof(*u));

	if (!m || !u) {
		free(m);
		if (u)
			pg->unmapped = u;
		return -ENOMEM;
	}
	pg->unmapped = u;
	for (i = 0; i < total; i++) {
		const struct region *e = i < pg->nr_mapped ? &pg->mapped[i] :
					 &own[i - pg->nr_mapped];

		if (e->kind == UCR_BACK_GONE && e->last == k) {
			u[nu] = *e;
			u[nu++].placed = false;
		} else {
			m[nm] = *e;
			m[nm++].placed = true;
		}
	}
	qsort(m, nm, sizeof(*m), cmp_region);
	free(pg->mapped);
	pg->mapped = m;
	pg->nr_mapped = nm;
	pg->nr_unmapped = nu;
	return 0;
}

int ucr_pages_ring(struct ucr_pages *pg, unsigned int k, bool existing,
		   const char **refused, char *why, size_t size)
{
	struct region *own = NULL;
	struct ucr_share sh;
	unsigned int n = 0;
	int ret;

	*refused = "buffer-shared";
	ret = ucr_share_plan(pg->rings, pg->nr_rings, k, &sh, why, size);
	if (!ret) {
		*refused = "buffer-pages";
		ret = ucr_pages_plan(pg, k, sh.cloned, existing, &own, &n, why, size);
	}
	if (!ret)
		ret = ucr_pages_commit(pg, k, own, n);
	free(own);
	ucr_share_free(&sh);
	return ret;
}

void ucr_pages_free(struct ucr_pages *pg)
{
	free(pg->mapped);
	free(pg->unmapped);
	pg->mapped = pg->unmapped = NULL;
	pg->nr_mapped = pg->nr_unmapped = 0;
}
