// SPDX-License-Identifier: GPL-2.0
/*
 * Writing an image directory (README.md, "The image"): each part with its
 * size and CRC32 in the manifest, the manifest's own CRC32 on its last line.
 * Written under <dir>.partial and renamed into place, so a failed dump
 * leaves nothing at <dir>. image_read.c reads it back.
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
	tprintf(t, "setup flags=0x%x sq_entries=%u cq_entries=%u sqe_size=%u cqe_size=%u sq_thread_idle_ms=%u sq_cpu=%d sq_share=%d\n",
		k->flags, k->sq_entries, k->cq_entries, r->sqe_size, r->cqe_size,
		r->sq_thread_idle_ms, k->sq_cpu, r->sq_share);
	tprintf(t, "state submitter_tid=%u file_alloc_start=%u file_alloc_end=%u iowq_limits_set=%u iowq_bounded=%u iowq_unbounded=%u clockid=%d clock_offset=%u pers_next=%u napi_enabled=%u napi_busy_poll_us=%u napi_prefer=%u\n",
		k->submitter_tid, k->file_alloc_start, k->file_alloc_end,
		k->iowq_limits_set, k->iowq_limits[0], k->iowq_limits[1],
		k->clockid, k->clock_offset, k->pers_next, k->napi_enabled,
		k->napi_busy_poll_us, k->napi_prefer);
	tprintf(t, "eventfd fd=%d async=%u count=%" PRIu64 "\n", r->evfd,
		r->k.evfd_async, r->evfd_count);
	tprintf(t, "restrictions registered=%u enabled=%u register_op=0x%" PRIx64 " sqe_op=0x%" PRIx64 " flags_allowed=0x%x flags_required=0x%x\n",
		k->restrictions_registered, k->restricted, (uint64_t)k->restrict_register_op,
		(uint64_t)k->restrict_sqe_op, k->restrict_flags_allowed, k->restrict_flags_required);
	tprintf(t, "kernel cached_sq_head=%u cached_cq_tail=%u cq_extra=%u drain_disabled=%u\n",
		k->cached_sq_head, k->cached_cq_tail, k->cq_extra, k->drain_disabled);
	tprintf(t, "memory sq_head=%u sq_tail=%u cq_head=%u cq_tail=%u sq_flags=0x%x cq_flags=0x%x sq_dropped=%u cq_overflow=%u\n",
		r->sq_head, r->sq_tail, r->cq_head, r->cq_tail, r->sq_flags,
		r->cq_flags, r->sq_dropped, r->cq_overflow);
	for (i = 0; i < r->nr_maps; i++)
		tprintf(t, "map start=0x%" PRIx64 " end=0x%" PRIx64 " pgoff=0x%" PRIx64 "\n",
			r->maps[i].start, r->maps[i].end, r->maps[i].pgoff);
	tprintf(t, "bufs slots=%u used=%u\n", r->nr_bufs, r->nr_used_bufs);
	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		ucr_escape(b->backing_path, path, sizeof(path));
		tprintf(t, "buf slot=%u addr=0x%" PRIx64 " len=%" PRIu64 " folio_shift=%u nr_bvecs=%u refs=%u acct_pages=%" PRIu64 " id=0x%" PRIx64 " mapped=%d backing=%s backing_off=%" PRIu64 " backing_path=%s\n",
			b->slot, b->addr, b->len, b->folio_shift, b->nr_bvecs,
			b->refs, b->acct_pages, b->id, b->mapped,
			ucr_backing_name(b->backing), b->backing_off,
			path[0] ? path : "-");
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
