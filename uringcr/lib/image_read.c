// SPDX-License-Identifier: GPL-2.0
/*
 * Reading an image directory (README.md, "The image") strictly: every part
 * checked against the manifest's size and CRC32 before it is parsed, every
 * field range-checked, unknown keys and left-over parts refused, and each
 * refusal naming the part and the line. image_write.c writes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uapi.h"

#include "internal.h"
#include "image.h"

#define MAX_PARTS	(UCR_MAX_RINGS * (UCR_MAX_BUFS + 8))

/* Reading */

struct rpart {
	char name[64];
	uint64_t size;
	uint32_t crc;
	bool used;
};

struct reader {
	const char *dir;
	unsigned int nr_parts;
	struct rpart *parts;
	struct ucr_err *err;
};

static int bad(struct reader *rd, const char *part, unsigned int line,
	       const char *what)
{
	if (line)
		return ucr_errf(rd->err, -EINVAL,
				"image %s: part %s, line %u: %s: the image is damaged or not from this uringcr (image version %d)",
				rd->dir, part, line, what, UCR_IMAGE_VERSION);
	return ucr_errf(rd->err, -EINVAL,
			"image %s: part %s: %s: the image is damaged or not from this uringcr (image version %d)",
			rd->dir, part, what, UCR_IMAGE_VERSION);
}

static int cmp_part(const void *a, const void *b)
{
	return strcmp(((const struct rpart *)a)->name, ((const struct rpart *)b)->name);
}

/* rd->parts is sorted by name once the manifest is read (parse_manifest()) */
static struct rpart *find_part(struct reader *rd, const char *name)
{
	struct rpart key;

	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, rd->parts, rd->nr_parts, sizeof(*rd->parts), cmp_part);
}

/* Reads part @name whole after checking its size and CRC; NULL on error. */
static char *read_part(struct reader *rd, const char *name, uint64_t want,
		       bool text)
{
	struct rpart *p = find_part(rd, name);
	char path[PATH_MAX];
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	if (!p) {
		bad(rd, name, 0, "missing from the manifest");
		return NULL;
	}
	p->used = true;
	if (want != UINT64_MAX && p->size != want) {
		bad(rd, name, 0, "its size does not fit the ring it belongs to");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", rd->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		ucr_errf(rd->err, -ENOENT, "image %s: part %s: cannot open %s: %s",
			 rd->dir, name, path, fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size != p->size) {
		close(fd);
		ucr_errf(rd->err, -EINVAL,
			 "image %s: part %s is %lld bytes, the manifest says %" PRIu64 ": the image is truncated or damaged",
			 rd->dir, name, (long long)st.st_size, p->size);
		return NULL;
	}
	buf = malloc(p->size + 1);
	if (!buf) {
		close(fd);
		ucr_errf(rd->err, -ENOMEM, "image %s: part %s: out of memory", rd->dir, name);
		return NULL;
	}
	while (got < p->size) {
		ssize_t n = read(fd, buf + got, p->size - got);

		if (n <= 0) {
			close(fd);
			free(buf);
			ucr_errf(rd->err, -EIO, "image %s: part %s: read failed", rd->dir, name);
			return NULL;
		}
		got += n;
	}
	close(fd);
	buf[p->size] = '\0';
	if (ucr_crc32(0, buf, p->size) != p->crc) {
		free(buf);
		ucr_errf(rd->err, -EINVAL,
			 "image %s: part %s: CRC32 mismatch (manifest 0x%08x): the part is damaged",
			 rd->dir, name, p->crc);
		return NULL;
	}
	if (text && memchr(buf, '\0', p->size)) {
		free(buf);
		bad(rd, name, 0, "a NUL byte in a text part");
		return NULL;
	}
	return buf;
}

/* Checks the size and CRC of a part that is not loaded (buffer contents). */
static int check_part(struct reader *rd, const char *name, uint64_t want)
{
	char *buf = read_part(rd, name, want, false);

	if (!buf)
		return rd->err->code ? rd->err->code : -EINVAL;
	free(buf);
	return 0;
}

#define U64(kv, key, lo, hi, dst) do {					\
		uint64_t v_;						\
		if (ucr_kv_u64(kv, key, lo, hi, &v_))			\
			return bad(rd, part, line, "field " key " missing or out of range"); \
		dst = v_;						\
	} while (0)
#define S64(kv, key, lo, hi, dst) do {					\
		int64_t v_;						\
		if (ucr_kv_s64(kv, key, lo, hi, &v_))			\
			return bad(rd, part, line, "field " key " missing or out of range"); \
		dst = v_;						\
	} while (0)

struct lines {
	char *next;
	unsigned int no;
};

static char *next_line(struct lines *l)
{
	char *s = l->next, *nl;

	if (!s || !*s)
		return NULL;
	nl = strchr(s, '\n');
	if (!nl)
		return NULL;	/* every line ends with a newline */
	*nl = '\0';
	l->next = nl + 1;
	l->no++;
	return s;
}

static int expect(struct reader *rd, const char *part, struct lines *l,
		  struct ucr_kv *kv, const char *name)
{
	char *s = next_line(l);
	unsigned int line = l->no;

	if (!s)
		return bad(rd, part, line + 1, "ends early");
	if (ucr_kv_parse(kv, s) || strcmp(kv->name, name)) {
		char what[96];

		snprintf(what, sizeof(what), "expected a '%s' line", name);
		return bad(rd, part, line, what);
	}
	return 0;
}

static int done(struct reader *rd, const char *part, unsigned int line,
		const struct ucr_kv *kv)
{
	const char *k = ucr_kv_unused(kv);
	char what[96];

	if (!k)
		return 0;
	snprintf(what, sizeof(what), "unknown field '%.40s'", k);
	return bad(rd, part, line, what);
}

/* buf ... backing=<name> backing_off=<n> backing_path=<escaped> */
static int backing(struct reader *rd, const char *part, unsigned int line,
		   struct ucr_kv *kv, struct ucr_buf *b)
{
	const char *name = ucr_kv_str(kv, "backing");
	const char *path = ucr_kv_str(kv, "backing_path");
	int kind = name ? ucr_backing_parse(name) : -1;

	if (kind < 0)
		return bad(rd, part, line, "field backing missing or unknown");
	b->backing = kind;
	U64(kv, "backing_off", 0, UINT64_MAX, b->backing_off);
	/* "-": none (a path starts with '/') */
	if (!path || (strcmp(path, "-") &&
		      ucr_unescape(path, b->backing_path, sizeof(b->backing_path))))
		return bad(rd, part, line, "field backing_path missing or malformed");
	if ((b->backing == UCR_BACK_SHARED) != !!b->backing_path[0])
		return bad(rd, part, line, "a shared backing needs a path, and only it");
	if ((b->backing == UCR_BACK_GONE) != !b->mapped)
		return bad(rd, part, line, "backing and mapped disagree");
	return 0;
}

static int parse_bufs(struct reader *rd, const char *part, struct lines *l,
		      struct ucr_ring *r)
{
	struct ucr_kv kv;
	unsigned int line;
	uint32_t i, j, used;

	if (expect(rd, part, l, &kv, "bufs"))
		return -EINVAL;
	line = l->no;
	U64(&kv, "slots", 0, UCR_MAX_BUFS, r->nr_bufs);
	U64(&kv, "used", 0, r->nr_bufs, used);
	if (done(rd, part, line, &kv))
		return -EINVAL;
	r->bufs = calloc(used ? used : 1, sizeof(*r->bufs));
	if (!r->bufs)
		return ucr_errf(rd->err, -ENOMEM, "out of memory");
	for (i = 0; i < used; i++) {
		struct ucr_buf *b = &r->bufs[i];
		uint64_t pages;

		if (expect(rd, part, l, &kv, "buf"))
			return -EINVAL;
		line = l->no;
		U64(&kv, "slot", i ? r->bufs[i - 1].slot + 1 : 0, r->nr_bufs - 1, b->slot);
		U64(&kv, "addr", 0, UINT64_MAX, b->addr);
		U64(&kv, "len", 1, UCR_MAX_BUF_LEN, b->len);
		U64(&kv, "folio_shift", 12, 30, b->folio_shift);
		pages = (b->len >> 12) + 2;
		U64(&kv, "nr_bvecs", 1, pages, b->nr_bvecs);
		U64(&kv, "refs", 1, UINT32_MAX, b->refs);
		U64(&kv, "acct_pages", 0, pages << 9, b->acct_pages);
		U64(&kv, "id", 0, UINT64_MAX, b->id);
		U64(&kv, "mapped", 0, 1, b->mapped);
		if (backing(rd, part, line, &kv, b))
			return -EINVAL;
		if (done(rd, part, line, &kv))
			return -EINVAL;
		if (b->addr + b->len < b->addr)
			return bad(rd, part, line, "buffer wraps the address space");
		b->bv = calloc(b->nr_bvecs, sizeof(*b->bv));
		if (!b->bv)
			return ucr_errf(rd->err, -ENOMEM, "out of memory");
		r->nr_used_bufs = i + 1;	/* ucr_ring_free() frees b->bv */
		for (j = 0; j < b->nr_bvecs; j++) {
			uint32_t idx;

			if (expect(rd, part, l, &kv, "bvec"))
				return -EINVAL;
			line = l->no;
			U64(&kv, "index", j, j, idx);
			(void)idx;
			U64(&kv, "pfn", 0, UINT64_MAX, b->bv[j].pfn);
			U64(&kv, "len", 1, 1ULL << b->folio_shift, b->bv[j].len);
			U64(&kv, "offset", 0, (1ULL << b->folio_shift) - 1, b->bv[j].offset);
			if (done(rd, part, line, &kv))
				return -EINVAL;
		}
	}
	return 0;
}

static int parse_files(struct reader *rd, const char *part, struct lines *l,
		       struct ucr_ring *r)
{
	struct ucr_kv kv;
	unsigned int line;
	uint32_t i;

	if (expect(rd, part, l, &kv, "files"))
		return -EINVAL;
	line = l->no;
	U64(&kv, "slots", 0, UCR_MAX_SLOTS, r->nr_files);
	U64(&kv, "used", 0, r->nr_files, r->nr_used_files);
	if (done(rd, part, line, &kv))
		return -EINVAL;
	r->files = calloc(r->nr_used_files ? r->nr_used_files : 1, sizeof(*r->files));
	if (!r->files)
		return ucr_errf(rd->err, -ENOMEM, "out of memory");
	for (i = 0; i < r->nr_used_files; i++) {
		struct ucr_file *f = &r->files[i];
		const char *path;

		if (expect(rd, part, l, &kv, "file"))
			return -EINVAL;
		line = l->no;
		U64(&kv, "slot", i ? r->files[i - 1].slot + 1 : 0, r->nr_files - 1, f->slot);
		U64(&kv, "dev", 0, UINT64_MAX, f->dev);
		U64(&kv, "ino", 0, UINT64_MAX, f->ino);
		U64(&kv, "rdev", 0, UINT64_MAX, f->rdev);
		U64(&kv, "mode", 0, 0177777, f->mode);
		U64(&kv, "flags", 0, UINT32_MAX, f->f_flags);
		U64(&kv, "fmode", 0, UINT32_MAX, f->f_mode);
		S64(&kv, "pos", INT64_MIN, INT64_MAX, f->pos);
		U64(&kv, "nlink", 0, UINT32_MAX, f->nlink);
		S64(&kv, "sk_type", -1, INT32_MAX, f->sk_type);
		S64(&kv, "sk_family", -1, INT32_MAX, f->sk_family);
		path = ucr_kv_str(&kv, "path");
		if (!path || ucr_unescape(path, f->path, sizeof(f->path)))
			return bad(rd, part, line, "field path missing or malformed");
		if (done(rd, part, line, &kv))
			return -EINVAL;
	}
	return 0;
}

static int parse_groups(const char *s, struct ucr_pers_rec *p)
{
	char *end;

	p->ngroups = 0;
	if (!strcmp(s, "-"))
		return 0;
	for (;;) {
		unsigned long v;

		if (p->ngroups == UCR_GROUPS_MAX || *s < '0' || *s > '9')
			return -1;
		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno || v > UINT32_MAX)
			return -1;
		p->groups[p->ngroups++] = v;
		if (!*end)
			return 0;
		if (*end != ',')
			return -1;
		s = end + 1;
	}
}

static int parse_pers(struct reader *rd, const char *part, struct lines *l,
		      struct ucr_ring *r)
{
	struct ucr_kv kv;
	unsigned int line;
	uint32_t i, used;

	if (expect(rd, part, l, &kv, "personalities"))
		return -EINVAL;
	line = l->no;
	U64(&kv, "used", 0, UCR_PERS_IDS, used);
	if (done(rd, part, line, &kv))
		return -EINVAL;
	r->pers = calloc(used ? used : 1, sizeof(*r->pers));
	if (!r->pers)
		return ucr_errf(rd->err, -ENOMEM, "out of memory");
	for (i = 0; i < used; i++) {
		struct ucr_pers_rec *p = &r->pers[i];
		const char *groups;

		if (expect(rd, part, l, &kv, "pers"))
			return -EINVAL;
		line = l->no;
		p->kind = UCR_REC_PERS;
		U64(&kv, "id", i ? r->pers[i - 1].id + 1 : 1, UCR_PERS_IDS - 1, p->id);
		U64(&kv, "uid", 0, UINT32_MAX, p->uid);
		U64(&kv, "euid", 0, UINT32_MAX, p->euid);
		U64(&kv, "suid", 0, UINT32_MAX, p->suid);
		U64(&kv, "fsuid", 0, UINT32_MAX, p->fsuid);
		U64(&kv, "gid", 0, UINT32_MAX, p->gid);
		U64(&kv, "egid", 0, UINT32_MAX, p->egid);
		U64(&kv, "sgid", 0, UINT32_MAX, p->sgid);
		U64(&kv, "fsgid", 0, UINT32_MAX, p->fsgid);
		U64(&kv, "cap_inh", 0, UINT64_MAX, p->cap_inheritable);
		U64(&kv, "cap_prm", 0, UINT64_MAX, p->cap_permitted);
		U64(&kv, "cap_eff", 0, UINT64_MAX, p->cap_effective);
		U64(&kv, "cap_bnd", 0, UINT64_MAX, p->cap_bset);
		U64(&kv, "cap_amb", 0, UINT64_MAX, p->cap_ambient);
		U64(&kv, "securebits", 0, UINT32_MAX, p->securebits);
		U64(&kv, "userns", 0, UINT32_MAX, p->userns_inum);
		groups = ucr_kv_str(&kv, "groups");
		if (!groups || parse_groups(groups, p))
			return bad(rd, part, line, "field groups missing or malformed");
		if (done(rd, part, line, &kv))
			return -EINVAL;
		r->nr_pers = i + 1;
	}
	return 0;
}

static int parse_ring(struct reader *rd, unsigned int idx, struct ucr_ring *r)
{
	struct ucr_ring_rec *k = &r->k;
	struct ucr_kv kv;
	struct lines l;
	char part[64], name[64];
	unsigned int line;
	char *text, *s;
	uint32_t i;
	int ret = -EINVAL;

	snprintf(part, sizeof(part), "ring%u.txt", idx);
	text = read_part(rd, part, UINT64_MAX, true);
	if (!text)
		return rd->err->code;
	l.next = text;
	l.no = 0;

#define EXPECT(n) do { if (expect(rd, part, &l, &kv, n)) goto out; line = l.no; } while (0)
#define DONE() do { if (done(rd, part, line, &kv)) goto out; } while (0)
#undef U64
#undef S64
#define U64(key, lo, hi, dst) do {					\
		uint64_t v_;						\
		if (ucr_kv_u64(&kv, key, lo, hi, &v_)) {		\
			bad(rd, part, line, "field " key " missing or out of range"); \
			goto out;					\
		}							\
		dst = v_;						\
	} while (0)
#define S64(key, lo, hi, dst) do {					\
		int64_t v_;						\
		if (ucr_kv_s64(&kv, key, lo, hi, &v_)) {		\
			bad(rd, part, line, "field " key " missing or out of range"); \
			goto out;					\
		}							\
		dst = v_;						\
	} while (0)

	EXPECT("ring");
	S64("fd", 0, INT32_MAX, r->fd);
	U64("ino", 0, UINT64_MAX, r->ino);
	S64("reg_tid", -1, INT32_MAX, r->reg_tid);
	S64("reg_index", -1, 15, r->reg_index);
	DONE();
	EXPECT("setup");
	U64("flags", 0, UINT32_MAX, k->flags);
	U64("sq_entries", 1, UCR_MAX_ENTRIES, k->sq_entries);
	U64("cq_entries", 1, UCR_MAX_CQ_ENTRIES, k->cq_entries);
	U64("sqe_size", 64, 128, r->sqe_size);
	U64("cqe_size", 16, 32, r->cqe_size);
	U64("sq_thread_idle_ms", 0, UINT32_MAX, r->sq_thread_idle_ms);
	S64("sq_cpu", -1, INT32_MAX, k->sq_cpu);
	S64("sq_share", -1, idx, r->sq_share);
	DONE();
	if ((r->sq_share < 0) != !(k->flags & IORING_SETUP_SQPOLL)) {
		bad(rd, part, line, "an SQ thread shared by a ring without IORING_SETUP_SQPOLL, or an SQPOLL ring without one");
		goto out;
	}
	if ((k->sq_entries & (k->sq_entries - 1)) || (k->cq_entries & (k->cq_entries - 1)) ||
	    k->cq_entries < k->sq_entries) {
		bad(rd, part, line, "ring sizes that io_uring_setup() never makes");
		goto out;
	}
	if (r->sqe_size != ((k->flags & IORING_SETUP_SQE128) ? 128u : 64u) ||
	    r->cqe_size != ((k->flags & IORING_SETUP_CQE32) ? 32u : 16u)) {
		bad(rd, part, line, "entry sizes do not match the setup flags");
		goto out;
	}
	EXPECT("state");
	U64("submitter_tid", 0, INT32_MAX, k->submitter_tid);
	U64("file_alloc_start", 0, UCR_MAX_SLOTS, k->file_alloc_start);
	U64("file_alloc_end", k->file_alloc_start, UCR_MAX_SLOTS, k->file_alloc_end);
	U64("iowq_limits_set", 0, 1, k->iowq_limits_set);
	U64("iowq_bounded", 0, UINT32_MAX, k->iowq_limits[0]);
	U64("iowq_unbounded", 0, UINT32_MAX, k->iowq_limits[1]);
	S64("clockid", 0, 15, k->clockid);
	U64("clock_offset", 0, 15, k->clock_offset);
	U64("pers_next", 0, 65536, k->pers_next);
	U64("napi_enabled", 0, 1, k->napi_enabled);
	U64("napi_busy_poll_us", 0, 10000, k->napi_busy_poll_us);	/* napi.c's cap */
	U64("napi_prefer", 0, 1, k->napi_prefer);
	DONE();
	EXPECT("eventfd");
	S64("fd", -1, INT32_MAX, r->evfd);
	U64("async", 0, 1, k->evfd_async);
	U64("count", 0, UINT64_MAX - 1, r->evfd_count);
	DONE();
	k->has_evfd = r->evfd >= 0;
	EXPECT("restrictions");
	U64("registered", 0, 1, k->restrictions_registered);
	U64("enabled", 0, 1, k->restricted);
	U64("register_op", 0, UINT64_MAX, k->restrict_register_op);
	U64("sqe_op", 0, UINT64_MAX, k->restrict_sqe_op);
	U64("flags_allowed", 0, 255, k->restrict_flags_allowed);
	U64("flags_required", 0, 255, k->restrict_flags_required);
	DONE();
	EXPECT("kernel");
	U64("cached_sq_head", 0, UINT32_MAX, k->cached_sq_head);
	U64("cached_cq_tail", 0, UINT32_MAX, k->cached_cq_tail);
	U64("cq_extra", 0, UINT32_MAX, k->cq_extra);
	U64("drain_disabled", 0, 1, k->drain_disabled);
	DONE();
	EXPECT("memory");
	U64("sq_head", 0, UINT32_MAX, r->sq_head);
	U64("sq_tail", 0, UINT32_MAX, r->sq_tail);
	U64("cq_head", 0, UINT32_MAX, r->cq_head);
	U64("cq_tail", 0, UINT32_MAX, r->cq_tail);
	U64("sq_flags", 0, UINT32_MAX, r->sq_flags);
	U64("cq_flags", 0, UINT32_MAX, r->cq_flags);
	U64("sq_dropped", 0, UINT32_MAX, r->sq_dropped);
	U64("cq_overflow", 0, UINT32_MAX, r->cq_overflow);
	DONE();
	if (r->sq_head != k->cached_sq_head || r->cq_tail != k->cached_cq_tail ||
	    r->sq_tail - r->sq_head > k->sq_entries || r->cq_tail - r->cq_head > k->cq_entries) {
		bad(rd, part, line, "counters that do not fit together");
		goto out;
	}
	/* up to four "map" lines, then "bufs" */
	for (;;) {
		char *save = l.next;
		unsigned int no = l.no;

		s = next_line(&l);
		if (!s || strncmp(s, "map ", 4)) {
			l.next = save;
			l.no = no;
			if (s)	/* next_line() cut it: put the newline back */
				s[strlen(s)] = '\n';
			break;
		}
		line = l.no;
		if (r->nr_maps == 4 || ucr_kv_parse(&kv, s)) {
			bad(rd, part, line, "too many or malformed map lines");
			goto out;
		}
		U64("start", 0, UINT64_MAX, r->maps[r->nr_maps].start);
		U64("end", r->maps[r->nr_maps].start + 1, UINT64_MAX, r->maps[r->nr_maps].end);
		U64("pgoff", 0, UINT64_MAX, r->maps[r->nr_maps].pgoff);
		DONE();
		r->nr_maps++;
	}
	if (parse_bufs(rd, part, &l, r) || parse_files(rd, part, &l, r) ||
	    parse_pers(rd, part, &l, r))
		goto out;
	EXPECT("end");
	DONE();
	if (l.next && *l.next) {
		bad(rd, part, l.no + 1, "text after the end line");
		goto out;
	}
	k->nr_user_bufs = r->nr_bufs;
	k->nr_user_files = r->nr_files;

	/* the arrays */
	if (!(k->flags & IORING_SETUP_NO_SQARRAY)) {
		snprintf(name, sizeof(name), "ring%u.sqarray", idx);
		r->sq_array = (uint32_t *)read_part(rd, name, (uint64_t)k->sq_entries * 4, false);
		if (!r->sq_array) {
			ret = rd->err->code;
			goto out;
		}
	}
	snprintf(name, sizeof(name), "ring%u.sqes", idx);
	r->sqes = read_part(rd, name, (uint64_t)k->sq_entries * r->sqe_size, false);
	if (!r->sqes) {
		ret = rd->err->code;
		goto out;
	}
	snprintf(name, sizeof(name), "ring%u.cqes", idx);
	r->cqes = read_part(rd, name, (uint64_t)k->cq_entries * r->cqe_size, false);
	if (!r->cqes) {
		ret = rd->err->code;
		goto out;
	}
	for (i = 0; i < r->nr_used_bufs; i++) {
		snprintf(name, sizeof(name), "ring%u.buf%u", idx, r->bufs[i].slot);
		ret = check_part(rd, name, r->bufs[i].len);
		if (ret)
			goto out;
	}
	ret = 0;
out:
	free(text);
	return ret;
#undef EXPECT
#undef DONE
}

static int parse_manifest(struct reader *rd, char *text, size_t len,
			  struct ucr_image *img)
{
	const char *part = MANIFEST;
	struct ucr_kv kv;
	struct lines l = { text, 0 };
	unsigned int line = 1;
	char *s, *last;
	uint64_t crc;

	/* the last line is the CRC of everything before it */
	if (!len || text[len - 1] != '\n')
		return bad(rd, part, 0, "does not end with a newline (truncated?)");
	text[len - 1] = '\0';
	last = strrchr(text, '\n');
	text[len - 1] = '\n';
	if (!last)
		return bad(rd, part, 0, "has no checksum line");
	last++;
	if (ucr_kv_parse(&kv, last) || strcmp(kv.name, "manifest") ||
	    ucr_kv_u64(&kv, "crc32", 0, UINT32_MAX, &crc) || ucr_kv_unused(&kv))
		return bad(rd, part, 0, "the last line is not its checksum (truncated?)");
	{
		/* the CRC does not cover its own line: only its one spelling counts */
		char want[64];

		snprintf(want, sizeof(want), "manifest crc32=0x%08x\n",
			 ucr_crc32(0, text, last - text));
		if (strcmp(last, want))
			return ucr_errf(rd->err, -EINVAL,
					"image %s: part manifest: CRC32 mismatch: the manifest is damaged",
					rd->dir);
	}
	*last = '\0';

	s = next_line(&l);
	if (!s || strncmp(s, MAGIC " ", sizeof(MAGIC)))
		return bad(rd, part, 1, "not a uringcr image (no '" MAGIC "' line)");
	img->version = atoi(s + sizeof(MAGIC));
	if (img->version != UCR_IMAGE_VERSION)
		return ucr_errf(rd->err, -EPROTO,
				"image %s: part manifest: image version '%s', this uringcr reads version %d: use the uringcr that wrote it",
				rd->dir, s + sizeof(MAGIC), UCR_IMAGE_VERSION);
	if (expect(rd, part, &l, &kv, "process"))
		return -EINVAL;
	line = l.no;
	{
		uint64_t v;
		const char *comm;

		if (ucr_kv_u64(&kv, "pid", 1, INT32_MAX, &v))
			return bad(rd, part, line, "field pid missing or out of range");
		img->pid = v;
		if (ucr_kv_u64(&kv, "rings", 0, UCR_MAX_RINGS, &v))
			return bad(rd, part, line, "field rings missing or out of range");
		img->nr_rings = v;
		comm = ucr_kv_str(&kv, "comm");
		if (!comm || ucr_unescape(comm, img->comm, sizeof(img->comm)))
			return bad(rd, part, line, "field comm missing or malformed");
		if (done(rd, part, line, &kv))
			return -EINVAL;
	}
	rd->parts = calloc(MAX_PARTS, sizeof(*rd->parts));
	if (!rd->parts)
		return ucr_errf(rd->err, -ENOMEM, "out of memory");
	while ((s = next_line(&l))) {
		struct rpart *p;
		const char *name;
		uint64_t v;

		line = l.no;
		if (rd->nr_parts == MAX_PARTS)
			return bad(rd, part, line, "too many parts");
		p = &rd->parts[rd->nr_parts];
		if (ucr_kv_parse(&kv, s) || strcmp(kv.name, "part"))
			return bad(rd, part, line, "expected a 'part' line");
		name = ucr_kv_str(&kv, "name");
		if (!name || !*name || strlen(name) >= sizeof(p->name) ||
		    strchr(name, '/') || name[0] == '.' || !strcmp(name, MANIFEST))
			return bad(rd, part, line, "a part name that is not a plain file name");
		snprintf(p->name, sizeof(p->name), "%s", name);
		if (ucr_kv_u64(&kv, "size", 0, UINT64_MAX, &p->size) ||
		    ucr_kv_u64(&kv, "crc32", 0, UINT32_MAX, &v))
			return bad(rd, part, line, "field size or crc32 missing or out of range");
		p->crc = v;
		if (done(rd, part, line, &kv))
			return -EINVAL;
		rd->nr_parts++;
	}
	if (l.next && *l.next)
		return bad(rd, part, l.no + 1, "a line without its newline");
	qsort(rd->parts, rd->nr_parts, sizeof(*rd->parts), cmp_part);
	for (unsigned int i = 1; i < rd->nr_parts; i++)
		if (!strcmp(rd->parts[i - 1].name, rd->parts[i].name))
			return bad(rd, rd->parts[i].name, 0, "listed twice in the manifest");
	return 0;
}

int ucr_image_open(const char *dir, struct ucr_image **out, struct ucr_err *err)
{
	struct reader rd = { .dir = dir, .err = err };
	struct ucr_image *img;
	size_t size;
	char path[PATH_MAX];
	struct stat st;
	char *text = NULL;
	unsigned int i;
	int ret;

	*out = NULL;
	err->code = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
	if (stat(path, &st))
		return ucr_errf(err, -errno,
				"image %s: no manifest (%s): not an image directory, or the dump that made it did not finish",
				dir, strerror(errno));
	if (st.st_size > (64 << 20))
		return ucr_errf(err, -EFBIG, "image %s: part manifest: %lld bytes, more than any image has",
				dir, (long long)st.st_size);
	img = calloc(1, sizeof(*img));
	if (!img)
		return ucr_errf(err, -ENOMEM, "out of memory");
	snprintf(img->dir, sizeof(img->dir), "%s", dir);
	size = st.st_size;
	{
		/* its CRC is its own last line: parse_manifest() checks it */
		FILE *f = fopen(path, "re");
		size_t n;

		text = malloc(size + 1);
		if (!f || !text) {
			if (f)
				fclose(f);
			ret = ucr_errf(err, -EIO, "image %s: cannot read its manifest", dir);
			goto fail;
		}
		n = fread(text, 1, size, f);
		fclose(f);
		if (n != size) {
			ret = ucr_errf(err, -EIO, "image %s: part manifest: short read", dir);
			goto fail;
		}
		text[n] = '\0';
		if (memchr(text, '\0', n)) {
			ret = bad(&rd, MANIFEST, 0, "a NUL byte in a text part");
			goto fail;
		}
	}
	ret = parse_manifest(&rd, text, size, img);
	if (ret)
		goto fail;
	img->rings = calloc(img->nr_rings ? img->nr_rings : 1, sizeof(*img->rings));
	if (!img->rings) {
		ret = ucr_errf(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < img->nr_rings; i++) {
		ret = parse_ring(&rd, i, &img->rings[i]);
		if (ret) {
			img->nr_rings = i + 1;	/* free what ring i got */
			goto fail;
		}
	}
	for (i = 0; i < img->nr_rings; i++) {
		const struct ucr_ring *r = &img->rings[i];
		char part[32];

		/* a ring sharing an SQ thread names the first ring on it */
		if (r->sq_share >= 0 && img->rings[r->sq_share].sq_share != r->sq_share) {
			snprintf(part, sizeof(part), "ring%u.txt", i);
			ret = bad(&rd, part, 0, "sq_share names a ring that is not the first on its SQ thread");
			goto fail;
		}
	}
	for (i = 0; i < rd.nr_parts; i++) {
		if (!rd.parts[i].used) {
			ret = bad(&rd, rd.parts[i].name, 0, "listed in the manifest but belongs to no ring");
			goto fail;
		}
	}
	free(text);
	free(rd.parts);
	*out = img;
	return 0;
fail:
	if (!ret)
		ret = -EINVAL;
	if (!err->code)
		ucr_errf(err, ret, "image %s: unreadable", dir);
	free(text);
	free(rd.parts);
	ucr_image_free(img);
	return ret;
}
