// SPDX-License-Identifier: GPL-2.0
/*
 * ucr_dump() and ucr_check(): find the rings, freeze the owner, wait for
 * in-flight requests, read every ring through the iterators and its own
 * mapping, refuse by name what the image cannot carry, write the image,
 * and resume the owner (README.md, "What a dump does").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uapi.h"

#include "image.h"
#include "internal.h"
#include "kcore.h"
#include "probe.h"
#include "target.h"
#include "dumper.h"

#define CONSISTENT_TRIES	3
#define COPY_CHUNK		(1 << 20)


void ucr_opts_default(struct ucr_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->freeze = UCR_FREEZE_SIGSTOP;
	o->drain_ms = 2000;
	o->lock_ms = 5000;
}

static int cmp_bvec(const void *a, const void *b)
{
	const struct ucr_bvec_rec *x = a, *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->bvec_index < y->bvec_index ? -1 : x->bvec_index > y->bvec_index;
}

static int take_bufs(struct dumper *d, struct ucr_ring *r, struct ucr_bvec_rec *bv,
		     size_t n)
{
	size_t i;

	qsort(bv, n, sizeof(*bv), cmp_bvec);
	r->bufs = calloc(n ? n : 1, sizeof(*r->bufs));
	if (!r->bufs)
		return ucr_errf(d->err, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct ucr_buf *b = r->nr_used_bufs ? &r->bufs[r->nr_used_bufs - 1] : NULL;

		if (!b || b->slot != bv[i].slot) {
			b = &r->bufs[r->nr_used_bufs++];
			b->slot = bv[i].slot;
			b->addr = bv[i].addr;
			b->len = bv[i].len;
			b->folio_shift = bv[i].folio_shift;
			b->nr_bvecs = bv[i].nr_bvecs;
			b->refs = bv[i].refs;
			b->acct_pages = bv[i].acct_pages;
			b->id = bv[i].buf_id;
			b->bv = calloc(b->nr_bvecs ? b->nr_bvecs : 1, sizeof(*b->bv));
			if (!b->bv)
				return ucr_errf(d->err, -ENOMEM, "out of memory");
		}
		if (bv[i].bvec_index != b->have_bv || b->have_bv >= b->nr_bvecs)
			return ucr_errf(d->err, -EPROTO,
					"process %d, ring fd %d: buffer slot %u: bvec %u of %u came out of order",
					d->t.pid, r->fd, b->slot, bv[i].bvec_index, b->nr_bvecs);
		b->bv[b->have_bv].pfn = bv[i].pfn;
		b->bv[b->have_bv].len = bv[i].bv_len;
		b->bv[b->have_bv].offset = bv[i].bv_offset;
		b->have_bv++;
	}
	for (i = 0; i < r->nr_used_bufs; i++)
		if (r->bufs[i].have_bv != r->bufs[i].nr_bvecs)
			return ucr_errf(d->err, -EPROTO,
					"process %d, ring fd %d: buffer slot %u: %u of %u bvecs in the walk",
					d->t.pid, r->fd, r->bufs[i].slot, r->bufs[i].have_bv,
					r->bufs[i].nr_bvecs);
	return 0;
}

static int take_files(struct dumper *d, struct ucr_ring *r, struct ucr_file_rec *f,
		      size_t n)
{
	size_t i;

	r->files = calloc(n ? n : 1, sizeof(*r->files));
	if (!r->files)
		return ucr_errf(d->err, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct ucr_file *x = &r->files[i];

		if (i && f[i].slot <= f[i - 1].slot)
			return ucr_errf(d->err, -EPROTO, "process %d, ring fd %d: file slots out of order",
					d->t.pid, r->fd);
		x->slot = f[i].slot;
		x->dev = f[i].dev;
		x->ino = f[i].ino;
		x->rdev = f[i].rdev;
		x->pos = f[i].pos;
		x->mode = f[i].mode;
		x->f_flags = f[i].f_flags;
		x->f_mode = f[i].f_mode;
		x->nlink = f[i].nlink;
		x->sk_type = f[i].sk_type;
		x->sk_family = f[i].sk_family;
		if (f[i].path_len > 0)
			memcpy(x->path, f[i].path, sizeof(x->path) - 1);
	}
	r->nr_used_files = n;
	return 0;
}

static int map_ring(struct dumper *d, size_t i, struct ucr_ring *r)
{
	const struct ucr_ring_rec *k = &r->k;
	size_t ring_len = (size_t)k->n_ring_pages << 12;
	size_t sqe_len = (size_t)k->n_sqe_pages << 12;
	size_t cq_len = (size_t)k->cq_entries * r->cqe_size;
	size_t sqes = (size_t)k->sq_entries * r->sqe_size;
	char *ring, *sqe;
	int ret = 0;

	if (k->off_cqes + cq_len > ring_len || sqes > sqe_len ||
	    (k->off_sq_array && k->off_sq_array + k->sq_entries * 4ULL > ring_len))
		return ucr_errf(d->err, -EPROTO, "process %d, ring fd %d: ring layout does not fit its pages",
				d->t.pid, r->fd);
	ring = mmap(NULL, ring_len, PROT_READ, MAP_SHARED, d->fds[i], IORING_OFF_SQ_RING);
	if (ring == MAP_FAILED)
		return ucr_errf(d->err, -errno, "process %d, ring fd %d: mmap of its rings: %s",
				d->t.pid, r->fd, strerror(errno));
	sqe = mmap(NULL, sqe_len, PROT_READ, MAP_SHARED, d->fds[i], IORING_OFF_SQES);
	if (sqe == MAP_FAILED) {
		ret = ucr_errf(d->err, -errno, "process %d, ring fd %d: mmap of its SQEs: %s",
			       d->t.pid, r->fd, strerror(errno));
		munmap(ring, ring_len);
		return ret;
	}
#define U32(off) (*(volatile uint32_t *)(ring + (off)))
	r->sq_head = U32(k->off_sq_head);
	r->sq_tail = U32(k->off_sq_tail);
	r->cq_head = U32(k->off_cq_head);
	r->cq_tail = U32(k->off_cq_tail);
	r->sq_flags = U32(k->off_sq_flags);
	r->cq_flags = U32(k->off_cq_flags);
	r->sq_dropped = U32(k->off_sq_dropped);
	r->cq_overflow = U32(k->off_cq_overflow);
#undef U32
	r->sqes = malloc(sqes);
	r->cqes = malloc(cq_len);
	if (k->off_sq_array)
		r->sq_array = malloc(k->sq_entries * 4ULL);
	if (!r->sqes || !r->cqes || (k->off_sq_array && !r->sq_array)) {
		ret = ucr_errf(d->err, -ENOMEM, "out of memory");
	} else {
		memcpy(r->sqes, sqe, sqes);
		memcpy(r->cqes, ring + k->off_cqes, cq_len);
		if (r->sq_array)
			memcpy(r->sq_array, ring + k->off_sq_array, k->sq_entries * 4ULL);
	}
	munmap(ring, ring_len);
	munmap(sqe, sqe_len);
	if (!ret && (r->sq_head != k->cached_sq_head || r->cq_tail != k->cached_cq_tail))
		ret = ucr_errf(d->err, -EAGAIN,
			       "process %d, ring fd %d: the ring's shared counters (sq.head %u, cq.tail %u) lag the kernel's (%u, %u) while frozen",
			       d->t.pid, r->fd, r->sq_head, r->cq_tail, k->cached_sq_head,
			       k->cached_cq_tail);
	return ret;
}

static uint32_t idle_ms(struct dumper *d, size_t i, const struct ucr_ring_rec *k)
{
	const struct ucr_ring_rec *k0 = &d->k0[i];
	uint64_t dj = k->jiffies - k0->jiffies, dns = k->ktime_ns - k0->ktime_ns;
	static const unsigned int hzs[] = { 100, 250, 300, 1000 };
	unsigned int hz = 1000, best = ~0u;

	/* HZ from two looks at jiffies and the clock, rounded to a real HZ */
	if (dns >= 20000000) {
		uint64_t est = dj * 1000000000ULL / dns;

		for (unsigned int j = 0; j < 4; j++) {
			unsigned int diff = est > hzs[j] ? est - hzs[j] : hzs[j] - est;

			if (diff < best) {
				best = diff;
				hz = hzs[j];
			}
		}
	}
	return (uint64_t)k->sq_thread_idle * 1000 / hz;
}

/* Each SQPOLL ring's first ring of the image on the same SQ thread */
static void sq_threads(struct dumper *d)
{
	size_t i, j;

	for (i = 0; i < d->nr; i++) {
		struct ucr_ring *r = &d->img.rings[i];

		r->sq_share = -1;
		if (!(r->k.flags & IORING_SETUP_SQPOLL))
			continue;
		for (j = 0; j <= i && r->sq_share < 0; j++)
			if (d->img.rings[j].k.sqd_id == r->k.sqd_id)
				r->sq_share = j;
	}
}

/* Reads ring i in full: two walks that must agree, then its mapping. */
static int read_ring(struct dumper *d, size_t i, struct ucr_ring *r)
{
	char what[96];
	int ret = -EAGAIN, tries;

	snprintf(what, sizeof(what), "process %d, ring fd %d", d->t.pid, d->owner_fds[i]);
	for (tries = 0; tries < CONSISTENT_TRIES && ret == -EAGAIN; tries++) {
		struct ucr_ring_rec kb, kf;
		struct ucr_bvec_rec *bv = NULL;
		struct ucr_file_rec *f = NULL;
		struct ucr_pers_rec *pers = NULL;
		size_t nb, nf, np;
		uint64_t ino = r->ino;
		int reg_tid = r->reg_tid, reg_index = r->reg_index;

		ucr_ring_free(r);
		r->fd = d->owner_fds[i];
		r->ino = ino;
		r->reg_tid = reg_tid;
		r->reg_index = reg_index;
		ret = ucr_probe_bufs(d->probe, d->fds[i], d->o->lock_ms, &kb, &bv, &nb,
				     &d->rep->stats.edeadlk_retries, what, d->err);
		if (ret)
			return ret;
		ret = ucr_probe_files(d->probe, d->fds[i], d->o->lock_ms, &kf, &f, &nf,
				      &pers, &np, &d->rep->stats.edeadlk_retries, what, d->err);
		if (ret) {
			free(bv);
			return ret;
		}
		r->k = kb;
		r->sqe_size = (kb.flags & IORING_SETUP_SQE128) ? 128 : 64;
		r->cqe_size = (kb.flags & IORING_SETUP_CQE32) ? 32 : 16;
		r->nr_bufs = kb.nr_user_bufs;
		r->nr_files = kf.nr_user_files;
		ret = take_bufs(d, r, bv, nb);
		if (!ret)
			ret = take_files(d, r, f, nf);
		r->pers = pers;
		r->nr_pers = np;
		r->k.has_personalities = kf.has_personalities;
		r->k.pers_deep = kf.pers_deep;
		r->k.pers_next = kf.pers_next;
		free(bv);
		free(f);
		if (ret)
			return ret;
		if (kb.cached_sq_head != kf.cached_sq_head || kb.cached_cq_tail != kf.cached_cq_tail ||
		    kb.flags != kf.flags || kb.nr_user_bufs != kf.nr_user_bufs) {
			ret = ucr_errf(d->err, -EAGAIN, "%s: the ring changed between two walks while frozen",
				       what);
			continue;
		}
		if (!(kb.flags & IORING_SETUP_NO_MMAP))
			ret = map_ring(d, i, r);
	}
	if (ret)
		return ret;
	if (r->k.flags & IORING_SETUP_SQPOLL)
		r->sq_thread_idle_ms = idle_ms(d, i, &r->k);
	return ucr_target_maps(&d->t, r->ino, r->maps, 4, &r->nr_maps, d->err);
}

/* The count of the eventfd at the owner's @fd, from its fdinfo. */
static int eventfd_count(struct dumper *d, int fd, uint64_t *count)
{
	char path[64], line[128];
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", d->t.pid, fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "eventfd-count: %llx", &v) == 1) {
			*count = v;
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

/* A registered eventfd that is also an fd of the owner: which fd. */
static int find_eventfds(struct dumper *d)
{
	struct ucr_tfile_rec *t = NULL;
	size_t n = 0, i, j;
	int ret = 0;
	bool any = false;

	for (j = 0; j < d->nr; j++) {
		d->img.rings[j].evfd = -1;
		any |= d->img.rings[j].k.has_evfd;
	}
	if (!any)
		return 0;
	ret = ucr_probe_task_files(d->probe, d->t.pid, &t, &n, d->err);
	if (ret)
		return ret;
	for (j = 0; j < d->nr; j++) {
		struct ucr_ring *r = &d->img.rings[j];

		for (i = 0; r->k.has_evfd && i < n; i++) {
			if (t[i].private_data != r->k.evfd_id)
				continue;
			r->evfd = t[i].fd;
			ret = eventfd_count(d, r->evfd, &r->evfd_count);
			if (ret) {
				ret = ucr_errf(d->err, ret,
					       "process %d: fd %d is ring fd %d's eventfd, but its fdinfo has no eventfd-count",
					       d->t.pid, r->evfd, r->fd);
				break;
			}
			break;
		}
	}
	free(t);
	return ret;
}

/* Registered ring fds: which fd ring each is, and rings that have no fd. */
static int find_registered(struct dumper *d)
{
	struct ucr_treg_rec *t;
	size_t n, i, j;
	int ret;

	ret = ucr_probe_tregs(d->probe, d->t.pid, &t, &n, d->err);
	if (ret)
		return ret;
	for (i = 0; i < n; i++) {
		bool found = false;

		for (j = 0; j < d->nr; j++) {
			struct ucr_ring *r = &d->img.rings[j];

			if (r->ino != t[i].ino)
				continue;
			found = true;
			if (r->reg_index >= 0) {
				ucr_refuse(d->rep, "registered-ring-twice", r->fd,
					   "the ring is registered more than once (thread %u index %u, thread %d index %d)",
					   t[i].tid, t[i].index, r->reg_tid, r->reg_index);
				break;
			}
			r->reg_tid = t[i].tid;
			r->reg_index = t[i].index;
		}
		if (!found && d->o->fd < 0)
			ucr_refuse(d->rep, "registered-ring-only", -1,
				   "thread %u holds a ring (inode %" PRIu64 ") only as registered ring fd %u (IORING_REGISTER_RING_FDS or IORING_SETUP_REGISTERED_FD_ONLY): it has no fd to take it by, so it cannot be read",
				   t[i].tid, (uint64_t)t[i].ino, t[i].index);
	}
	free(t);
	return 0;
}

/*
 * Bytes [@off, @off+@n) of a buffer whose mapping is gone, from the pages
 * it pins: the buffer is its bio_vecs' bytes in order, each bvec
 * bv_len bytes from bv_offset into the folio at its PFN.
 */
static int read_pinned(struct dumper *d, const struct ucr_buf *b, uint64_t off,
		       char *buf, size_t n)
{
	uint64_t pos = 0;
	uint32_t i;

	for (i = 0; i < b->nr_bvecs && n; i++) {
		const struct ucr_bvec *v = &b->bv[i];
		uint64_t skip, take;
		int ret;

		if (off >= pos + v->len) {
			pos += v->len;
			continue;
		}
		skip = off - pos;
		take = v->len - skip < n ? v->len - skip : n;
		ret = ucr_kcore_read(d->kcore, (v->pfn << 12) + v->offset + skip, buf, take, d->err);
		if (ret)
			return ucr_errf(d->err, ret,
					"process %d: buffer slot %u: reading its pinned pages: %s",
					d->t.pid, b->slot, d->err->msg);
		buf += take;
		off += take;
		n -= take;
		pos += v->len;
	}
	if (n)
		return ucr_errf(d->err, -EPROTO, "process %d: buffer slot %u: its bvecs hold fewer bytes than its length",
				d->t.pid, b->slot);
	return 0;
}

static int copy_buf(struct dumper *d, struct ucr_writer *w, unsigned int ri,
		    const struct ucr_buf *b, char *chunk)
{
	char name[64];
	uint64_t off;
	int ret;

	snprintf(name, sizeof(name), "ring%u.buf%u", ri, b->slot);
	ret = ucr_w_part_open(w, name, d->err);
	for (off = 0; !ret && off < b->len; off += COPY_CHUNK) {
		size_t n = b->len - off < COPY_CHUNK ? b->len - off : COPY_CHUNK;

		if (b->mapped)
			ret = ucr_target_read(&d->t, b->addr + off, chunk, n, d->err);
		else
			ret = read_pinned(d, b, off, chunk, n);
		if (!ret)
			ret = ucr_w_part_write(w, chunk, n, d->err);
		if (d->o->progress && b->len >= (16 << 20))
			fprintf(stderr, "\ruringcr: ring fd %d, buffer slot %u: %" PRIu64 "/%" PRIu64 " MiB",
				d->img.rings[ri].fd, b->slot, (off + n) >> 20, b->len >> 20);
	}
	if (d->o->progress && b->len >= (16 << 20))
		fputc('\n', stderr);
	if (w->fd >= 0) {
		int r2 = ucr_w_part_close(w, ret ? NULL : d->err);

		if (!ret)
			ret = r2;
	}
	if (!ret)
		d->rep->stats.pages_written += (b->len + 4095) >> 12;
	return ret;
}

/*
 * Is each buffer still mapped at its address by the pages it pins? Then its
 * contents are read through /proc/PID/mem; if not (unmapped or replaced
 * after registration), from the pinned pages through /proc/kcore.
 */
static int check_buf_pages(struct dumper *d, struct ucr_ring *r)
{
	uint32_t i;

	for (i = 0; i < r->nr_used_bufs; i++) {
		struct ucr_buf *b = &r->bufs[i];
		size_t n;
		uint64_t *pfns = ucr_buf_pfns(b, &n);
		int same, ret;

		if (!pfns)
			return ucr_errf(d->err, -ENOMEM, "out of memory");
		same = ucr_target_pages_are(&d->t, b->addr, b->len, pfns, n, d->err);
		free(pfns);
		if (same < 0)
			return same;
		b->mapped = same;
		if (same) {
			ret = ucr_target_backing(&d->t, b->addr, &b->backing, &b->backing_off,
						 b->backing_path, sizeof(b->backing_path), d->err);
			if (ret)
				return ret;
			continue;
		}
		b->backing = UCR_BACK_GONE;
		if (!d->kcore && !d->kcore_err.code)
			ucr_kcore_open(&d->kcore, &d->kcore_err);
		if (!d->kcore)
			ucr_refuse(d->rep, "buffer-unmapped", r->fd,
				   "buffer slot %u (0x%" PRIx64 ", %" PRIu64 " bytes): its pinned pages are no longer mapped at its address (unmapped or replaced after registration), and they cannot be read another way: %s",
				   b->slot, b->addr, b->len, d->kcore_err.msg);
	}
	return 0;
}

static int run(struct dumper *d, const char *dir)
{
	const struct ucr_opts *o = d->o;
	struct ucr_writer w = { .fd = -1 };
	char *chunk = NULL;
	size_t i;
	int ret, r2;

	ret = ucr_target_open(&d->t, o->pid, d->err);
	if (ret)
		return ret;
	snprintf(d->img.comm, sizeof(d->img.comm), "%s", d->t.comm);
	d->img.pid = o->pid;
	if (o->fd >= 0) {
		char path[64], link[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", o->pid, o->fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			return errno == ENOENT
				? ucr_errf(d->err, -EBADF, "process %d has no fd %d", o->pid, o->fd)
				: ucr_errf(d->err, -errno, "process %d: %s: %s: uringcr needs ptrace attach rights over it (run as root or as its user)",
					   o->pid, path, strerror(errno));
		link[len] = '\0';
		if (strcmp(link, "anon_inode:[io_uring]"))
			return ucr_errf(d->err, -EBADFD, "process %d: fd %d is %s, not an io_uring instance",
					o->pid, o->fd, link);
		d->owner_fds = malloc(sizeof(int));
		if (!d->owner_fds)
			return ucr_errf(d->err, -ENOMEM, "out of memory");
		d->owner_fds[0] = o->fd;
		d->nr = 1;
	} else {
		ret = ucr_target_ring_fds(&d->t, &d->owner_fds, &d->nr, d->err);
		if (ret)
			return ret;
	}
	if (d->nr > UCR_MAX_RINGS)
		return ucr_errf(d->err, -E2BIG, "process %d has %zu rings, more than %d", o->pid,
				d->nr, UCR_MAX_RINGS);
	d->fds = calloc(d->nr ? d->nr : 1, sizeof(int));
	d->k0 = calloc(d->nr ? d->nr : 1, sizeof(*d->k0));
	d->img.rings = calloc(d->nr ? d->nr : 1, sizeof(*d->img.rings));
	if (!d->fds || !d->k0 || !d->img.rings)
		return ucr_errf(d->err, -ENOMEM, "out of memory");
	for (i = 0; i < d->nr; i++)
		d->fds[i] = -1;
	for (i = 0; i < d->nr; i++) {
		char path[64];
		struct stat st;

		d->fds[i] = ucr_target_getfd(&d->t, d->owner_fds[i], d->err);
		if (d->fds[i] < 0)
			return d->fds[i];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fds[i]);
		if (stat(path, &st))
			return ucr_errf(d->err, -errno, "stat of ring fd %d: %s", d->owner_fds[i],
					strerror(errno));
		d->img.rings[i].fd = d->owner_fds[i];
		d->img.rings[i].ino = st.st_ino;
		d->img.rings[i].reg_tid = -1;
		d->img.rings[i].reg_index = -1;
	}
	d->img.nr_rings = d->nr;
	d->rep->nr_rings = d->nr;
	ret = ucr_probe_load(&d->probe, d->err);
	if (ret)
		return ret;

	ret = ucr_freeze(&d->fz, &d->t, o->freeze, d->err);
	if (ret)
		return ret;
	if (o->hold_ms)
		ucr_pause_ms(o->hold_ms);
	ret = ucr_drain(d);
	if (!ret)
		ret = find_registered(d);
	for (i = 0; !ret && i < d->nr; i++)
		ret = read_ring(d, i, &d->img.rings[i]);
	if (!ret)
		ret = find_eventfds(d);
	for (i = 0; !ret && i < d->nr; i++) {
		ucr_refuse_ring(d, &d->img.rings[i]);
		ret = check_buf_pages(d, &d->img.rings[i]);
	}
	if (!ret) {
		sq_threads(d);
		ret = ucr_refuse_shared(d);
	}
	if (!ret && dir && d->rep->nr_refusals)
		ret = ucr_errf(d->err, -EOPNOTSUPP,
			       "process %d: %u thing%s the image cannot carry (first: %s: %s); nothing was written",
			       o->pid, d->rep->nr_refusals, d->rep->nr_refusals == 1 ? "" : "s",
			       d->rep->refusals[0].name, d->rep->refusals[0].why);
	if (!ret && dir) {
		chunk = malloc(COPY_CHUNK);
		ret = chunk ? ucr_w_begin(&w, dir, d->err) : ucr_errf(d->err, -ENOMEM, "out of memory");
		for (i = 0; !ret && i < d->nr; i++) {
			const struct ucr_ring *r = &d->img.rings[i];

			for (uint32_t b = 0; !ret && b < r->nr_used_bufs; b++) {
				ret = copy_buf(d, &w, i, &r->bufs[b], chunk);
				/* many small buffers: a line redrawn every 256 */
				if (o->progress && r->nr_used_bufs >= 1024 &&
				    (b % 256 == 255 || b + 1 == r->nr_used_bufs))
					fprintf(stderr, "\ruringcr: ring fd %d: %u/%u buffers%s", r->fd,
						b + 1, r->nr_used_bufs,
						b + 1 == r->nr_used_bufs ? "\n" : "");
			}
			if (!ret)
				ret = ucr_w_ring(&w, i, r, d->err);
		}
	}
	/* resume first, then report; a failed resume beats every other error */
	r2 = ucr_thaw(&d->fz, ret ? NULL : d->err);
	if (!ret && !r2 && ucr_freeze_broken(&d->fz))
		ret = ucr_errf(d->err, -EAGAIN,
			       "process %d: uringcr itself was stopped for over half a second while it held the freeze (another dumper or a debugger stopped it), so its guardian resumed the process: what was read may not be consistent; nothing was written, dump again",
			       o->pid);
	if (r2 && ret)
		ucr_errf(d->err, r2, "process %d could not be resumed (%s) after: %s", o->pid,
			 strerror(-r2), d->err->msg);
	if (!ret)
		ret = r2;
	/* freezing: the first freeze; frozen: every freeze, the drain's included */
	d->rep->stats.freezing_us = d->fz.first_frozen - d->fz.first_request;
	d->rep->stats.frozen_us = d->fz.frozen_us;
	d->rep->stats.drain_us = d->t_drain1 > d->t_drain0 ? d->t_drain1 - d->t_drain0 : 0;
	d->rep->stats.rings = d->nr;
	if (!ret && dir) {
		d->img.stats = d->rep->stats;
		ret = ucr_w_commit(&w, &d->img, d->err);
		d->rep->stats.bytes_written = w.stats_bytes;
	}
	if (w.open || w.parts)
		ucr_w_abort(&w);
	free(chunk);
	return ret;
}

static int collect(const struct ucr_opts *o, const char *dir, struct ucr_report *rep,
		   struct ucr_err *err)
{
	struct dumper d = { .o = o, .rep = rep, .err = err };
	uint64_t t0 = ucr_now_us();
	size_t i;
	int ret;

	memset(rep, 0, sizeof(*rep));
	err->code = 0;
	err->msg[0] = '\0';
	d.t.pidfd = d.t.mem_fd = d.t.pagemap_fd = -1;
	ucr_freezer_init(&d.fz);
	ret = run(&d, dir);
	ucr_freezer_fini(&d.fz);
	rep->stats.dump_us = ucr_now_us() - t0;
	for (i = 0; d.fds && i < d.nr; i++)
		if (d.fds[i] >= 0)
			close(d.fds[i]);
	for (i = 0; d.img.rings && i < d.img.nr_rings; i++)
		ucr_ring_free(&d.img.rings[i]);
	free(d.img.rings);
	free(d.fds);
	free(d.owner_fds);
	free(d.k0);
	ucr_probe_close(d.probe);
	ucr_kcore_close(d.kcore);
	ucr_target_close(&d.t);
	return ret;
}

int ucr_dump(const struct ucr_opts *o, const char *dir, struct ucr_report *rep,
	     struct ucr_err *err)
{
	return collect(o, dir, rep, err);
}

int ucr_check(const struct ucr_opts *o, struct ucr_report *rep, struct ucr_err *err)
{
	return collect(o, NULL, rep, err);
}
