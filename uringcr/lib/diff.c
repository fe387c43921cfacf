// SPDX-License-Identifier: GPL-2.0
/*
 * Comparing two images field by field (ucr_image_diff()): what `uringcr
 * verify` checks after restoring an image and dumping the new ring, and
 * what the tests check. Identity (pids, fd numbers, inodes, kernel
 * addresses, pfns, times, stats) differs between any two dumps and is not
 * compared; everything a restore must bring back is, the buffer contents
 * included (read from the image directories' ringN.bufS parts).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi.h"

#include "internal.h"

/* transient SQ flags: set and cleared by the kernel as it runs */
#define SQ_FLAGS_TRANSIENT	(IORING_SQ_NEED_WAKEUP | IORING_SQ_TASKRUN)
#define CHUNK			(64 << 10)

struct diff {
	const struct ucr_image *a, *b;
	unsigned int flags;
	FILE *out;
	int ring;		/* the ring the lines are about, or -1 */
	unsigned int n;
};

static void __attribute__((format(printf, 2, 3))) note(struct diff *d, const char *fmt, ...)
{
	va_list ap;

	d->n++;
	if (!d->out)
		return;
	if (d->ring >= 0)
		fprintf(d->out, "ring %d: ", d->ring);
	va_start(ap, fmt);
	vfprintf(d->out, fmt, ap);
	va_end(ap);
	fputc('\n', d->out);
}

/* Plain fields, table-driven */

enum fmt { DEC, SDEC, HEX, OCT, ZERO, BACKING };

struct field {
	const char *name;
	size_t off;
	unsigned char size;	/* 1, 4 or 8 */
	unsigned char fmt;
	uint32_t ignore;	/* bits not compared */
};

#define FLDM(type, name, m, fmt, ign) \
	{ name, offsetof(type, m), sizeof(((type *)0)->m), fmt, ign }
#define FLD(type, name, m, fmt) FLDM(type, name, m, fmt, 0)
#define RF(name, m, fmt) FLD(struct ucr_ring, name, m, fmt)
#define SECT(name) { name, 0, 0, 0, 0 }	/* @where for the fields after it */
#define N(t) (sizeof(t) / sizeof((t)[0]))

static uint64_t get(const void *base, const struct field *f)
{
	const char *p = (const char *)base + f->off;
	uint64_t v;

	if (f->size == 1)
		v = *(const uint8_t *)p;
	else if (f->size == 4 && f->fmt == SDEC)
		v = (uint64_t)(int64_t)*(const int32_t *)p;
	else if (f->size == 4)
		v = *(const uint32_t *)p;
	else
		v = *(const uint64_t *)p;
	v &= ~(uint64_t)f->ignore;
	return f->fmt == ZERO ? !!v : v;
}

static const char *fmtval(char *buf, size_t size, enum fmt fmt, uint64_t v)
{
	static const char *const fmts[] = {
		[DEC] = "%" PRIu64, [SDEC] = "%" PRId64, [HEX] = "0x%" PRIx64, [OCT] = "0%" PRIo64,
	};

	if (fmt == ZERO)
		return v ? "non-zero" : "zero";
	if (fmt == BACKING)
		return ucr_backing_name((enum ucr_backing)v);
	snprintf(buf, size, fmts[fmt], v);
	return buf;
}

/*
 * "<where> <name>: a != b" for a section of the ring, "<where>: <name> a != b"
 * for an item of a table (@item); a SECT() entry sets @where.
 */
static void cmp_fields(struct diff *d, const char *where, bool item,
		       const void *a, const void *b, const struct field *t, size_t n)
{
	char sa[32], sb[32];
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t va, vb;

		if (!t[i].size) {
			where = t[i].name;
			continue;
		}
		va = get(a, &t[i]);
		vb = get(b, &t[i]);
		if (va == vb)
			continue;
		note(d, item ? "%s: %s %s != %s" : "%s %s: %s != %s", where, t[i].name,
		     fmtval(sa, sizeof(sa), t[i].fmt, va), fmtval(sb, sizeof(sb), t[i].fmt, vb));
	}
}

/* The ring's own fields, section by section as the image's ringN.txt has them */
static const struct field ring_fields[] = {
	SECT("setup"), RF("flags", k.flags, HEX), RF("sq_entries", k.sq_entries, DEC),
	RF("cq_entries", k.cq_entries, DEC), RF("sqe_size", sqe_size, DEC),
	RF("cqe_size", cqe_size, DEC), RF("sq_thread_idle_ms", sq_thread_idle_ms, DEC),
	RF("sq_share", sq_share, SDEC),
	RF("n_ring_pages", k.n_ring_pages, DEC), RF("n_sqe_pages", k.n_sqe_pages, DEC),
	SECT("state"), RF("submitter_tid", k.submitter_tid, ZERO),	/* set or not */
	RF("file_alloc_start", k.file_alloc_start, DEC),
	RF("file_alloc_end", k.file_alloc_end, DEC), RF("iowq_limits_set", k.iowq_limits_set, DEC),
	RF("iowq_bounded", k.iowq_limits[0], DEC), RF("iowq_unbounded", k.iowq_limits[1], DEC),
	RF("clockid", k.clockid, SDEC), RF("clock_offset", k.clock_offset, DEC),
	RF("pers_next", k.pers_next, DEC), RF("napi_enabled", k.napi_enabled, DEC),
	RF("napi_busy_poll_us", k.napi_busy_poll_us, DEC), RF("napi_prefer", k.napi_prefer, DEC),
	SECT("restrictions"), RF("registered", k.restrictions_registered, DEC),
	RF("enabled", k.restricted, DEC), RF("register_op", k.restrict_register_op, HEX),
	RF("sqe_op", k.restrict_sqe_op, HEX), RF("flags_allowed", k.restrict_flags_allowed, HEX),
	RF("flags_required", k.restrict_flags_required, HEX),
	SECT("kernel"), RF("cached_sq_head", k.cached_sq_head, DEC),
	RF("cached_cq_tail", k.cached_cq_tail, DEC), RF("cq_extra", k.cq_extra, DEC),
	RF("drain_disabled", k.drain_disabled, DEC),
	SECT("memory"), RF("sq_head", sq_head, DEC), RF("sq_tail", sq_tail, DEC),
	RF("cq_head", cq_head, DEC), RF("cq_tail", cq_tail, DEC),
	FLDM(struct ucr_ring, "sq_flags", sq_flags, HEX, SQ_FLAGS_TRANSIENT),
	RF("cq_flags", cq_flags, HEX), RF("sq_dropped", sq_dropped, DEC),
	RF("cq_overflow", cq_overflow, DEC),
	SECT("maps"), RF("count", nr_maps, DEC),
	SECT("registered ring"), RF("index", reg_index, SDEC),	/* -1: not registered */
	SECT("bufs"), RF("slots", nr_bufs, DEC), RF("used", nr_used_bufs, DEC),
	SECT("files"), RF("slots", nr_files, DEC), RF("used", nr_used_files, DEC),
	SECT("personalities"), RF("used", nr_pers, DEC),
};

#define BF(name, m, fmt) FLD(struct ucr_buf, name, m, fmt)
static const struct field buf_fields[] = {	/* not id: kernel identity */
	BF("addr", addr, HEX), BF("len", len, DEC), BF("folio_shift", folio_shift, DEC),
	BF("nr_bvecs", nr_bvecs, DEC), BF("refs", refs, DEC), BF("acct_pages", acct_pages, DEC),
	BF("mapped", mapped, DEC), BF("backing", backing, BACKING),
	BF("backing_off", backing_off, DEC),
};
#define FF(name, m, fmt) FLD(struct ucr_file, name, m, fmt)
static const struct field file_fields[] = {
	FF("dev", dev, HEX), FF("ino", ino, DEC), FF("rdev", rdev, HEX), FF("mode", mode, OCT),
	FF("flags", f_flags, OCT), FF("fmode", f_mode, HEX), FF("pos", pos, SDEC),
	FF("nlink", nlink, DEC), FF("sk_type", sk_type, SDEC), FF("sk_family", sk_family, SDEC),
};
#define PF(name, m, fmt) FLD(struct ucr_pers_rec, name, m, fmt)
static const struct field pers_fields[] = {
	PF("uid", uid, DEC), PF("euid", euid, DEC), PF("suid", suid, DEC), PF("fsuid", fsuid, DEC),
	PF("gid", gid, DEC), PF("egid", egid, DEC), PF("sgid", sgid, DEC), PF("fsgid", fsgid, DEC),
	PF("cap_inh", cap_inheritable, HEX), PF("cap_prm", cap_permitted, HEX),
	PF("cap_eff", cap_effective, HEX), PF("cap_bnd", cap_bset, HEX),
	PF("cap_amb", cap_ambient, HEX), PF("securebits", securebits, HEX),
	PF("userns", userns_inum, DEC), PF("ngroups", ngroups, SDEC),
};
#define MF(name, m) FLD(struct ucr_map, name, m, HEX)
static const struct field map_fields[] = { MF("pgoff", pgoff), MF("start", start), MF("end", end) };
static const struct field evfd_fields[] = {
	RF("async", k.evfd_async, DEC), RF("count", evfd_count, DEC),
};

/* Binary parts entry by entry: bytes [@skip, @size) of each */
static void cmp_array(struct diff *d, const char *what, const void *a, const void *b,
		      uint32_t n, size_t size, size_t skip)
{
	uint32_t i, first = 0, bad = 0;

	if (!a || !b) {
		if (a != b)
			note(d, "%s: only in the %s image", what, a ? "first" : "second");
		return;
	}
	for (i = 0; i < n; i++)
		if (memcmp((const char *)a + i * size + skip, (const char *)b + i * size + skip,
			   size - skip) && !bad++)
			first = i;
	if (bad)
		note(d, "%s: %u of %u entries differ, the first at index %u", what, bad, n, first);
}

/* Buffer contents: the parts ringN.bufS of both image directories */
static void cmp_contents(struct diff *d, const char *where, uint32_t slot, uint64_t len)
{
	const struct ucr_image *img[2] = { d->a, d->b };
	char path[PATH_MAX], *buf = malloc(2 * CHUNK);
	FILE *f[2];
	uint64_t off;
	size_t j;
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/ring%d.buf%u", img[i]->dir, d->ring, slot);
		f[i] = fopen(path, "re");
		if (!f[i])
			note(d, "%s: contents: cannot open %s: %s", where, path, strerror(errno));
	}
	if (!buf)
		note(d, "%s: contents: out of memory", where);
	for (off = 0; f[0] && f[1] && buf && off < len; off += CHUNK) {
		size_t want = len - off < CHUNK ? len - off : CHUNK;

		if (fread(buf, 1, want, f[0]) != want ||
		    fread(buf + CHUNK, 1, want, f[1]) != want) {
			note(d, "%s: contents: short read at byte %" PRIu64, where, off);
			break;
		}
		if (!memcmp(buf, buf + CHUNK, want))
			continue;
		for (j = 0; buf[j] == buf[CHUNK + j]; j++)
			;
		note(d, "%s: contents differ at byte %" PRIu64, where, off + j);
		break;
	}
	free(buf);
	for (i = 0; i < 2; i++)
		if (f[i])
			fclose(f[i]);
}

/* Tables by slot (or id): a walk over both, each sorted by its key */

static void cmp_buf(struct diff *d, const char *where, const void *pa, const void *pb)
{
	const struct ucr_buf *a = pa, *b = pb;
	char what[80];

	cmp_fields(d, where, true, a, b, buf_fields, N(buf_fields));
	if (strcmp(a->backing_path, b->backing_path))
		note(d, "%s: backing_path '%s' != '%s'", where, a->backing_path, b->backing_path);
	snprintf(what, sizeof(what), "%s: bvecs", where);
	if (a->nr_bvecs == b->nr_bvecs)	/* their pfns are identity: not compared */
		cmp_array(d, what, a->bv, b->bv, a->nr_bvecs, sizeof(*a->bv),
			  offsetof(struct ucr_bvec, len));
	if (a->len == b->len && d->a->dir[0] && d->b->dir[0])	/* not for images in memory */
		cmp_contents(d, where, a->slot, a->len);
}

static void cmp_file(struct diff *d, const char *where, const void *pa, const void *pb)
{
	const struct ucr_file *a = pa, *b = pb;

	cmp_fields(d, where, true, a, b, file_fields, N(file_fields));
	if (strcmp(a->path, b->path))
		note(d, "%s: path '%s' != '%s'", where, a->path, b->path);
}

static void cmp_pers(struct diff *d, const char *where, const void *pa, const void *pb)
{
	const struct ucr_pers_rec *a = pa, *b = pb;
	int n = a->ngroups < UCR_GROUPS_MAX ? a->ngroups : UCR_GROUPS_MAX;

	cmp_fields(d, where, true, a, b, pers_fields, N(pers_fields));
	if (a->ngroups == b->ngroups && n > 0 &&
	    memcmp(a->groups, b->groups, n * sizeof(a->groups[0])))
		note(d, "%s: groups differ", where);
}

static void cmp_items(struct diff *d, const char *what, const void *a, uint32_t na,
		      const void *b, uint32_t nb, size_t size, size_t key_off,
		      void (*cmp)(struct diff *, const char *, const void *, const void *))
{
	uint32_t i = 0, j = 0;
	char where[64];

	while (i < na || j < nb) {
		const char *pa = i < na ? (const char *)a + i * size : NULL;
		const char *pb = j < nb ? (const char *)b + j * size : NULL;
		uint32_t ka = pa ? *(const uint32_t *)(pa + key_off) : UINT32_MAX;
		uint32_t kb = pb ? *(const uint32_t *)(pb + key_off) : UINT32_MAX;

		snprintf(where, sizeof(where), "%s %u", what, ka < kb ? ka : kb);
		if (pa && (!pb || ka < kb)) {
			note(d, "%s: only in the first image", where);
			i++;
		} else if (pb && (!pa || kb < ka)) {
			note(d, "%s: only in the second image", where);
			j++;
		} else {
			cmp(d, where, pa, pb);
			i++;
			j++;
		}
	}
}

/* The owner's mappings of the ring, in IORING_OFF_* order (then address) */
static int cmp_map(const void *pa, const void *pb)
{
	const struct ucr_map *a = pa, *b = pb;

	if (a->pgoff != b->pgoff)
		return a->pgoff < b->pgoff ? -1 : 1;
	return a->start < b->start ? -1 : a->start > b->start;
}

static void cmp_maps(struct diff *d, const struct ucr_ring *ra, const struct ucr_ring *rb)
{
	bool addr = !(d->flags & UCR_DIFF_ADDRESSES);
	unsigned int n = ra->nr_maps < rb->nr_maps ? ra->nr_maps : rb->nr_maps, i;
	struct ucr_map ma[4], mb[4];
	char where[16];

	memcpy(ma, ra->maps, sizeof(ma));
	memcpy(mb, rb->maps, sizeof(mb));
	qsort(ma, ra->nr_maps < 4 ? ra->nr_maps : 4, sizeof(ma[0]), cmp_map);
	qsort(mb, rb->nr_maps < 4 ? rb->nr_maps : 4, sizeof(mb[0]), cmp_map);
	for (i = 0; i < n && i < 4; i++) {
		uint64_t la = ma[i].end - ma[i].start, lb = mb[i].end - mb[i].start;

		snprintf(where, sizeof(where), "map %u", i);
		cmp_fields(d, where, true, &ma[i], &mb[i], map_fields, addr ? 3 : 1);
		if (!addr && la != lb)
			note(d, "%s: length %" PRIu64 " != %" PRIu64, where, la, lb);
	}
}

/* The first ring of @img with ring @k's eventfd (the same fd of the owner). */
static int evfd_first(const struct ucr_image *img, unsigned int k)
{
	unsigned int j;

	for (j = 0; j < k; j++)
		if (img->rings[j].evfd == img->rings[k].evfd)
			return j;
	return k;
}

/*
 * The eventfd's presence and which earlier ring has the same one, not
 * its fd number: an fd of the owner.
 */
static void cmp_eventfd(struct diff *d, const struct ucr_ring *a, const struct ucr_ring *b)
{
	int sa, sb;

	if ((a->evfd >= 0) != (b->evfd >= 0)) {
		note(d, "eventfd: only in the %s image", a->evfd >= 0 ? "first" : "second");
		return;
	}
	if (a->evfd < 0)
		return;
	cmp_fields(d, "eventfd", false, a, b, evfd_fields, N(evfd_fields));
	sa = evfd_first(d->a, d->ring);
	sb = evfd_first(d->b, d->ring);
	if (sa != sb)
		note(d, "eventfd: the one of ring %d != the one of ring %d", sa, sb);
}

static void cmp_ring(struct diff *d, const struct ucr_ring *a, const struct ucr_ring *b)
{
	cmp_fields(d, NULL, false, a, b, ring_fields, N(ring_fields));
	cmp_eventfd(d, a, b);
	cmp_maps(d, a, b);
	cmp_items(d, "buf slot", a->bufs, a->nr_used_bufs, b->bufs, b->nr_used_bufs,
		  sizeof(*a->bufs), offsetof(struct ucr_buf, slot), cmp_buf);
	cmp_items(d, "file slot", a->files, a->nr_used_files, b->files, b->nr_used_files,
		  sizeof(*a->files), offsetof(struct ucr_file, slot), cmp_file);
	cmp_items(d, "pers id", a->pers, a->nr_pers, b->pers, b->nr_pers,
		  sizeof(*a->pers), offsetof(struct ucr_pers_rec, id), cmp_pers);
	/* the arrays, when their sizes agree (else setup differs already) */
	if (a->k.sq_entries == b->k.sq_entries)
		cmp_array(d, "sq array", a->sq_array, b->sq_array, a->k.sq_entries, 4, 0);
	if (a->k.sq_entries == b->k.sq_entries && a->sqe_size == b->sqe_size)
		cmp_array(d, "sqes", a->sqes, b->sqes, a->k.sq_entries, a->sqe_size, 0);
	if (a->k.cq_entries == b->k.cq_entries && a->cqe_size == b->cqe_size)
		cmp_array(d, "cqes", a->cqes, b->cqes, a->k.cq_entries, a->cqe_size, 0);
}

unsigned int ucr_image_diff(const struct ucr_image *a, const struct ucr_image *b,
			    unsigned int flags, FILE *out)
{
	struct diff d = { .a = a, .b = b, .flags = flags, .out = out, .ring = -1 };
	unsigned int i;

	if (a->nr_rings != b->nr_rings)
		note(&d, "rings: %u != %u", a->nr_rings, b->nr_rings);
	for (i = 0; i < a->nr_rings && i < b->nr_rings; i++) {
		d.ring = i;
		cmp_ring(&d, &a->rings[i], &b->rings[i]);
	}
	return d.n;
}
