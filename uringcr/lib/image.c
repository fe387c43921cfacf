// SPDX-License-Identifier: GPL-2.0
/*
 * The image directory (README.md, "The image"): a manifest naming every
 * part with its size and CRC32, the manifest's own CRC32 on its last line,
 * one text part per ring and binary parts for the arrays and buffer
 * contents. Written under <dir>.partial and renamed into place, so a
 * failed dump leaves nothing at <dir>. Read strictly: every part checked
 * before it is parsed, every field range-checked, unknown keys refused.
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

#define MANIFEST	"manifest"
#define MAGIC		"uringcr-image"
#define MAX_PARTS	(UCR_MAX_RINGS * (UCR_MAX_BUFS + 8))

/* Writing */

static int rm_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(dir) ? -errno : 0;
}

int ucr_w_begin(struct ucr_writer *w, const char *dir, struct ucr_err *err)
{
	struct stat st;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (strlen(dir) + 16 >= sizeof(w->dir))
		return ucr_errf(err, -ENAMETOOLONG, "image directory %s: name too long", dir);
	if (!lstat(dir, &st))
		return ucr_errf(err, -EEXIST,
				"image directory %s exists: give a new directory (a dump never overwrites an image)",
				dir);
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	snprintf(w->tmp, sizeof(w->tmp), "%s.partial", dir);
	rm_tree(w->tmp);	/* left by a dumper that was killed */
	if (mkdir(w->tmp, 0700))
		return ucr_errf(err, -errno, "mkdir %s: %s", w->tmp, strerror(errno));
	w->open = true;
	return 0;
}

static int add_part(struct ucr_writer *w, const char *name, uint64_t size,
		    uint32_t crc, struct ucr_err *err)
{
	struct ucr_wpart *p;

	if (w->nr_parts == w->cap_parts) {
		unsigned int cap = w->cap_parts ? 2 * w->cap_parts : 64;

		p = realloc(w->parts, cap * sizeof(*p));
		if (!p)
			return ucr_errf(err, -ENOMEM, "out of memory listing image parts");
		w->parts = p;
		w->cap_parts = cap;
	}
	p = &w->parts[w->nr_parts++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->size = size;
	p->crc = crc;
	w->stats_bytes += size;
	return 0;
}

int ucr_w_part_open(struct ucr_writer *w, const char *name, struct ucr_err *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", w->tmp, name);
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return ucr_errf(err, -errno, "creating %s: %s", path, strerror(errno));
	snprintf(w->cur, sizeof(w->cur), "%s", name);
	w->cur_size = 0;
	w->cur_crc = 0;
	return 0;
}

int ucr_w_part_write(struct ucr_writer *w, const void *data, size_t len,
		     struct ucr_err *err)
{
	const char *p = data;
	size_t left = len;

	while (left) {
		ssize_t n = write(w->fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ucr_errf(err, n ? -errno : -EIO, "writing image part %s in %s: %s",
					w->cur, w->tmp, n ? strerror(errno) : "short write");
		p += n;
		left -= n;
	}
	w->cur_crc = ucr_crc32(w->cur_crc, data, len);
	w->cur_size += len;
	return 0;
}

int ucr_w_part_close(struct ucr_writer *w, struct ucr_err *err)
{
	int ret = 0;

	if (close(w->fd))
		ret = ucr_errf(err, -errno, "closing image part %s: %s", w->cur, strerror(errno));
	w->fd = -1;
	if (!ret)
		ret = add_part(w, w->cur, w->cur_size, w->cur_crc, err);
	return ret;
}

int ucr_w_part(struct ucr_writer *w, const char *name, const void *data,
	       size_t len, struct ucr_err *err)
{
	int ret = ucr_w_part_open(w, name, err);

	if (!ret)
		ret = ucr_w_part_write(w, data, len, err);
	if (w->fd >= 0) {
		int r2 = ucr_w_part_close(w, ret ? NULL : err);

		if (!ret)
			ret = r2;
	}
	return ret;
}

/* A text part is built in memory and written as one part. */
struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void tprintf(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tprintf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += n;
			return;
		}
		room = t->cap ? 2 * t->cap : 4096;
		while (room < t->len + n + 1)
			room *= 2;
		char *nb = realloc(t->buf, room);

		if (!nb) {
			t->oom = true;
			return;
		}
		t->buf = nb;
		t->cap = room;
	}
}

static void ring_text(struct text *t, const struct ucr_ring *r)
{
	const struct ucr_ring_rec *k = &r->k;
	char path[3 * UCR_PATH_MAX + 1];
	uint32_t i, j;

	tprintf(t, "ring fd=%d ino=%" PRIu64 " reg_tid=%d reg_index=%d\n",
		r->fd, r->ino, r->reg_tid, r->reg_index);
	tprintf(t, "setup flags=0x%x sq_entries=%u cq_entries=%u sqe_size=%u cqe_size=%u sq_thread_idle_ms=%u sq_cpu=%d\n",
		k->flags, k->sq_entries, k->cq_entries, r->sqe_size, r->cqe_size,
		r->sq_thread_idle_ms, k->sq_cpu);
	tprintf(t, "state submitter_tid=%u file_alloc_start=%u file_alloc_end=%u iowq_limits_set=%u iowq_bounded=%u iowq_unbounded=%u clockid=%d clock_offset=%u pers_next=%u\n",
		k->submitter_tid, k->file_alloc_start, k->file_alloc_end,
		k->iowq_limits_set, k->iowq_limits[0], k->iowq_limits[1],
		k->clockid, k->clock_offset, k->pers_next);
	tprintf(t, "eventfd fd=%d async=%u count=%" PRIu64 "\n", r->evfd,
		r->k.evfd_async, r->evfd_count);
	tprintf(t, "restrictions registered=%u enabled=%u register_op=0x%" PRIx64 " sqe_op=0x%" PRIx64 " flags_allowed=0x%x flags_required=0x%x\n",
		k->restrictions_registered, k->restricted, (uint64_t)k->restrict_register_op,
		(uint64_t)k->restrict_sqe_op, k->restrict_flags_allowed, k->restrict_flags_required);
	tprintf(t, "kernel cached_sq_head=%u cached_cq_tail=%u cq_extra=%u\n",
		k->cached_sq_head, k->cached_cq_tail, k->cq_extra);
	tprintf(t, "memory sq_head=%u sq_tail=%u cq_head=%u cq_tail=%u sq_flags=0x%x cq_flags=0x%x sq_dropped=%u cq_overflow=%u\n",
		r->sq_head, r->sq_tail, r->cq_head, r->cq_tail, r->sq_flags,
		r->cq_flags, r->sq_dropped, r->cq_overflow);
	for (i = 0; i < r->nr_maps; i++)
		tprintf(t, "map start=0x%" PRIx64 " end=0x%" PRIx64 " pgoff=0x%" PRIx64 "\n",
			r->maps[i].start, r->maps[i].end, r->maps[i].pgoff);
	tprintf(t, "bufs slots=%u used=%u\n", r->nr_bufs, r->nr_used_bufs);
	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		tprintf(t, "buf slot=%u addr=0x%" PRIx64 " len=%" PRIu64 " folio_shift=%u nr_bvecs=%u refs=%u acct_pages=%" PRIu64 " id=0x%" PRIx64 " mapped=%d\n",
			b->slot, b->addr, b->len, b->folio_shift, b->nr_bvecs,
			b->refs, b->acct_pages, b->id, b->mapped);
		for (j = 0; j < b->nr_bvecs; j++)
			tprintf(t, "bvec index=%u pfn=0x%" PRIx64 " len=%u offset=%u\n",
				j, b->bv[j].pfn, b->bv[j].len, b->bv[j].offset);
	}
	tprintf(t, "files slots=%u used=%u\n", r->nr_files, r->nr_used_files);
	for (i = 0; i < r->nr_used_files; i++) {
		const struct ucr_file *f = &r->files[i];

		ucr_escape(f->path, path, sizeof(path));
		tprintf(t, "file slot=%u dev=0x%" PRIx64 " ino=%" PRIu64 " rdev=0x%" PRIx64 " mode=0%o flags=0%o fmode=0x%x pos=%" PRId64 " nlink=%u sk_type=%d sk_family=%d path=%s\n",
			f->slot, f->dev, f->ino, f->rdev, f->mode, f->f_flags,
			f->f_mode, f->pos, f->nlink, f->sk_type, f->sk_family,
			path[0] ? path : "%00");
	}
	tprintf(t, "personalities used=%u\n", r->nr_pers);
	for (i = 0; i < r->nr_pers; i++) {
		const struct ucr_pers_rec *p = &r->pers[i];

		tprintf(t, "pers id=%u uid=%u euid=%u suid=%u fsuid=%u gid=%u egid=%u sgid=%u fsgid=%u cap_inh=0x%llx cap_prm=0x%llx cap_eff=0x%llx cap_bnd=0x%llx cap_amb=0x%llx securebits=0x%x userns=%u groups=",
			p->id, p->uid, p->euid, p->suid, p->fsuid, p->gid, p->egid, p->sgid,
			p->fsgid, (unsigned long long)p->cap_inheritable,
			(unsigned long long)p->cap_permitted, (unsigned long long)p->cap_effective,
			(unsigned long long)p->cap_bset, (unsigned long long)p->cap_ambient,
			p->securebits, p->userns_inum);
		if (!p->ngroups)
			tprintf(t, "-");
		for (j = 0; (int)j < p->ngroups && j < UCR_GROUPS_MAX; j++)
			tprintf(t, "%s%u", j ? "," : "", p->groups[j]);
		tprintf(t, "\n");
	}
	tprintf(t, "end\n");
}

int ucr_w_ring(struct ucr_writer *w, unsigned int idx, const struct ucr_ring *r,
	       struct ucr_err *err)
{
	struct text t = {};
	char name[64];
	int ret;

	ring_text(&t, r);
	if (t.oom) {
		free(t.buf);
		return ucr_errf(err, -ENOMEM, "out of memory writing ring %u", idx);
	}
	snprintf(name, sizeof(name), "ring%u.txt", idx);
	ret = ucr_w_part(w, name, t.buf, t.len, err);
	free(t.buf);
	if (!ret && r->sq_array) {
		snprintf(name, sizeof(name), "ring%u.sqarray", idx);
		ret = ucr_w_part(w, name, r->sq_array, (size_t)r->k.sq_entries * 4, err);
	}
	if (!ret) {
		snprintf(name, sizeof(name), "ring%u.sqes", idx);
		ret = ucr_w_part(w, name, r->sqes, (size_t)r->k.sq_entries * r->sqe_size, err);
	}
	if (!ret) {
		snprintf(name, sizeof(name), "ring%u.cqes", idx);
		ret = ucr_w_part(w, name, r->cqes, (size_t)r->k.cq_entries * r->cqe_size, err);
	}
	return ret;
}

int ucr_w_commit(struct ucr_writer *w, const struct ucr_image *img,
		 struct ucr_err *err)
{
	struct text t = {};
	char comm[3 * sizeof(img->comm) + 1];
	unsigned int i;
	int ret;

	ucr_escape(img->comm, comm, sizeof(comm));
	tprintf(&t, "%s %d\n", MAGIC, UCR_IMAGE_VERSION);
	tprintf(&t, "process pid=%d comm=%s rings=%u\n", img->pid,
		comm[0] ? comm : "%00", img->nr_rings);
	for (i = 0; i < w->nr_parts; i++)
		tprintf(&t, "part name=%s size=%" PRIu64 " crc32=0x%08x\n",
			w->parts[i].name, w->parts[i].size, w->parts[i].crc);
	if (t.oom) {
		free(t.buf);
		return ucr_errf(err, -ENOMEM, "out of memory writing the manifest");
	}
	tprintf(&t, "manifest crc32=0x%08x\n", ucr_crc32(0, t.buf, t.len));
	ret = t.oom ? ucr_errf(err, -ENOMEM, "out of memory writing the manifest")
		    : ucr_w_part_open(w, MANIFEST, err);
	if (!ret)
		ret = ucr_w_part_write(w, t.buf, t.len, err);
	free(t.buf);
	if (w->fd >= 0) {
		/* every part on disk before the directory gets its name */
		if (syncfs(w->fd) && !ret)
			ret = ucr_errf(err, -errno, "syncfs of %s: %s", w->tmp, strerror(errno));
		close(w->fd);
		w->fd = -1;
	}
	if (!ret && rename(w->tmp, w->dir))
		ret = ucr_errf(err, -errno, "rename %s to %s: %s", w->tmp, w->dir, strerror(errno));
	if (!ret)
		w->open = false;
	return ret;
}

void ucr_w_abort(struct ucr_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->open)
		rm_tree(w->tmp);
	w->open = false;
	free(w->parts);
	w->parts = NULL;
}

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
	DONE();
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

int ucr_image_reseal(const char *dir, struct ucr_err *err)
{
	char path[PATH_MAX], line[1024];
	struct text t = {};
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST);
	f = fopen(path, "re");
	if (!f)
		return ucr_errf(err, -errno, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		struct ucr_kv kv;
		const char *name;

		if (!strncmp(line, "manifest ", 9))
			break;
		if (!ucr_kv_parse(&kv, line) && !strcmp(kv.name, "part") &&
		    (name = ucr_kv_str(&kv, "name")) && !strchr(name, '/')) {
			char ppath[PATH_MAX];
			struct stat st;
			char *buf;
			FILE *pf;

			snprintf(ppath, sizeof(ppath), "%s/%s", dir, name);
			if (stat(ppath, &st) || !(pf = fopen(ppath, "re"))) {
				tprintf(&t, "%s", line);
				continue;
			}
			buf = malloc(st.st_size + 1);
			if (buf && fread(buf, 1, st.st_size, pf) == (size_t)st.st_size)
				tprintf(&t, "part name=%s size=%lld crc32=0x%08x\n", name,
					(long long)st.st_size, ucr_crc32(0, buf, st.st_size));
			else
				tprintf(&t, "%s", line);
			free(buf);
			fclose(pf);
			continue;
		}
		tprintf(&t, "%s", line);
	}
	fclose(f);
	tprintf(&t, "manifest crc32=0x%08x\n", ucr_crc32(0, t.buf, t.len));
	f = fopen(path, "we");
	if (!f || t.oom || fwrite(t.buf, 1, t.len, f) != t.len) {
		if (f)
			fclose(f);
		free(t.buf);
		return ucr_errf(err, -EIO, "rewriting %s failed", path);
	}
	fclose(f);
	free(t.buf);
	return 0;
}
