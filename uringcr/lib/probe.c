// SPDX-License-Identifier: GPL-2.0
/*
 * The iterator walks (bpf/uringcr.bpf.c): load the programs once, attach
 * one to a ring (or to the owner's tasks), read the walk to its end and
 * check it record by record.
 *
 * A read that meets a busy ->uring_lock fails with EDEADLK and leaves the
 * walk where it was; it is retried with a growing pause until lock_ms have
 * passed (README.md, "Locking"). So is EBUSY, a table being unregistered;
 * EAGAIN, the end of a read(2) after the 1024 objects of one hold of the
 * lock, is no pause at all.
 * ESTALE means the table, or the buffer being shown, was replaced between
 * two reads: the walk is begun again on a new iterator, a few times.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "probe.h"
#include "uringcr.skel.h"

struct ucr_probe {
	struct uringcr *skel;
};

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("UCR_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int ucr_probe_load(struct ucr_probe **out, struct ucr_err *err)
{
	struct ucr_probe *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return ucr_errf(err, -ENOMEM, "out of memory");
	libbpf_set_print(silent);
	p->skel = uringcr__open_and_load();
	if (!p->skel) {
		int e = errno;

		free(p);
		/* the verifier's refusals are EACCES too: only EPERM is about rights */
		if (e == EPERM)
			return ucr_errf(err, -e,
					"loading the iterator programs: %s: uringcr needs CAP_BPF and CAP_PERFMON (or root)",
					strerror(e));
		if (e == EACCES)
			return ucr_errf(err, -e,
					"loading the iterator programs: the verifier refused them (%s): this kernel's BTF does not fit the program uringcr was built with; UCR_DEBUG=1 shows the verifier's log",
					strerror(e));
		return ucr_errf(err, -e ? -e : -ENOENT,
				"loading the iterator programs: %s: this kernel has no io_uring_reg_buf/io_uring_reg_file BPF iterators (they come with the kernel-patches/ series); UCR_DEBUG=1 shows libbpf's log",
				strerror(e));
	}
	*out = p;
	return 0;
}

void ucr_probe_close(struct ucr_probe *p)
{
	if (!p)
		return;
	uringcr__destroy(p->skel);
	free(p);
}

/* walks begun again after ESTALE before giving up */
#define UCR_STALE_RESTARTS 8

/* A new iterator fd of @link: the fd, or the error reported in @err. */
static int open_walk(struct bpf_link *link, const char *what, struct ucr_err *err)
{
	int fd = bpf_iter_create(bpf_link__fd(link));

	if (fd < 0)
		return ucr_errf(err, -errno, "%s: bpf_iter_create: %s", what, strerror(errno));
	return fd;
}

/* The whole walk of @link into a malloc'd buffer. */
static int read_all(struct bpf_link *link, unsigned int lock_ms, char **out,
		    size_t *out_len, uint64_t *retries, const char *what,
		    struct ucr_err *err)
{
	uint64_t deadline = ucr_now_us() + (uint64_t)lock_ms * 1000;
	unsigned int backoff = 1, restarts = 0;
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	int fd;

	if (!buf)
		return ucr_errf(err, -ENOMEM, "out of memory");
	fd = open_walk(link, what, err);
	if (fd < 0) {
		free(buf);
		return fd;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < (1 << 15)) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				close(fd);
				free(buf);
				return ucr_errf(err, -ENOMEM, "%s: out of memory (%zu bytes read)", what, len);
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		/* EAGAIN ends a read(2) after 1024 objects (one hold of the lock) */
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno == ESTALE && restarts++ < UCR_STALE_RESTARTS) {
			/* the table changed under the walk: only a new one shows it whole */
			close(fd);
			len = 0;
			fd = open_walk(link, what, err);
			if (fd < 0) {
				free(buf);
				return fd;
			}
			continue;
		}
		if (n < 0 && errno == ESTALE) {
			close(fd);
			free(buf);
			return ucr_errf(err, -ESTALE,
					"%s: the ring's table changed under %u walks in a row (ESTALE): something keeps registering or updating it (a task not frozen with the target, e.g. the SQPOLL thread of a ring it shares, or another process); dump again when that stops",
					what, restarts);
		}
		if (n < 0 && (errno == EDEADLK || errno == EBUSY)) {
			if (retries)
				++*retries;
			if (ucr_now_us() >= deadline) {
				close(fd);
				free(buf);
				if (errno == EBUSY)
					return ucr_errf(err, -EBUSY,
							"%s: the ring's table stayed busy being unregistered for %u ms (EBUSY on every read: IORING_UNREGISTER_* waits for requests that use it); dump it when they end, or wait longer with --lock-timeout",
							what, lock_ms);
				return ucr_errf(err, -EDEADLK,
						"%s: the ring's uring_lock stayed held for %u ms (EDEADLK on every read: a task is inside io_uring_enter() or io_uring_register(), e.g. blocked on a page fault); dump it when that ends, or wait longer with --lock-timeout",
						what, lock_ms);
			}
			ucr_pause_ms(backoff);
			if (backoff < 64)
				backoff *= 2;
			continue;
		}
		if (n < 0) {
			int e = errno;

			close(fd);
			free(buf);
			return ucr_errf(err, -e, "%s: read: %s", what, strerror(e));
		}
		if (!n)
			break;
		len += n;
	}
	close(fd);
	*out = buf;
	*out_len = len;
	return 0;
}

static struct bpf_link *attach_ring(struct bpf_program *prog, int ring_fd)
{
	union bpf_iter_link_info linfo;
	LIBBPF_OPTS(bpf_iter_attach_opts, opts);

	/*
	 * The series' io_uring.ring_fd is the first __u32 of the union, as
	 * map.map_fd is: set through the older member, so this builds with
	 * any <linux/bpf.h>.
	 */
	memset(&linfo, 0, sizeof(linfo));
	linfo.map.map_fd = ring_fd;
	opts.link_info = &linfo;
	opts.link_info_len = sizeof(linfo);
	return bpf_program__attach_iter(prog, &opts);
}

/* The records of one kind a walk may hold, gathered into a malloc'd array. */
struct kind {
	uint32_t kind;
	size_t size;
	char *objs;
	size_t nr;
};

/*
 * Splits a walk into its records by kind (@kinds) and the final ring
 * record, which must come last and once.
 */
static int split(const char *buf, size_t len, struct kind *kinds, int nr_kinds,
		 struct ucr_ring_rec *ring, const char *what, struct ucr_err *err)
{
	bool have_ring = false;
	size_t off = 0;
	int i;

	for (i = 0; i < nr_kinds; i++) {
		kinds[i].nr = 0;
		kinds[i].objs = malloc(len ? len : 1);
		if (!kinds[i].objs) {
			while (i--)
				free(kinds[i].objs);
			return ucr_errf(err, -ENOMEM, "out of memory");
		}
	}
	while (off < len) {
		struct kind *k = NULL;
		uint32_t tag;

		memcpy(&tag, buf + off, sizeof(tag));
		for (i = 0; i < nr_kinds; i++)
			if (kinds[i].kind == tag)
				k = &kinds[i];
		if (tag == UCR_REC_RING && !have_ring && len - off == sizeof(*ring)) {
			memcpy(ring, buf + off, sizeof(*ring));
			have_ring = true;
			off += sizeof(*ring);
		} else if (k && !have_ring && len - off >= k->size) {
			memcpy(k->objs + k->nr * k->size, buf + off, k->size);
			k->nr++;
			off += k->size;
		} else {
			for (i = 0; i < nr_kinds; i++)
				free(kinds[i].objs);
			return ucr_errf(err, -EPROTO,
					"%s: the walk has a record uringcr cannot read at byte %zu of %zu (the BPF object and the library do not match)",
					what, off, len);
		}
	}
	if (!have_ring) {
		for (i = 0; i < nr_kinds; i++)
			free(kinds[i].objs);
		return ucr_errf(err, -EPROTO, "%s: the walk ended without its final call", what);
	}
	return 0;
}

static int walk_ring(struct bpf_program *prog, int ring_fd, unsigned int lock_ms,
		     struct kind *kinds, int nr_kinds, struct ucr_ring_rec *k,
		     uint64_t *retries, const char *what, struct ucr_err *err)
{
	struct bpf_link *link = attach_ring(prog, ring_fd);
	size_t len;
	char *buf;
	int ret;

	if (!link)
		return ucr_errf(err, -errno, "%s: attaching the iterator: %s", what, strerror(errno));
	ret = read_all(link, lock_ms, &buf, &len, retries, what, err);
	bpf_link__destroy(link);
	if (ret)
		return ret;
	ret = split(buf, len, kinds, nr_kinds, k, what, err);
	free(buf);
	return ret;
}

int ucr_probe_bufs(struct ucr_probe *p, int ring_fd, unsigned int lock_ms,
		   struct ucr_ring_rec *k, struct ucr_bvec_rec **bv, size_t *nr,
		   uint64_t *retries, const char *what, struct ucr_err *err)
{
	struct kind kinds[1] = { { .kind = UCR_REC_BVEC, .size = sizeof(**bv) } };
	int ret = walk_ring(p->skel->progs.ucr_bufs, ring_fd, lock_ms, kinds, 1, k,
			    retries, what, err);

	if (!ret) {
		*bv = (struct ucr_bvec_rec *)kinds[0].objs;
		*nr = kinds[0].nr;
	}
	return ret;
}

int ucr_probe_files(struct ucr_probe *p, int ring_fd, unsigned int lock_ms,
		    struct ucr_ring_rec *k, struct ucr_file_rec **f, size_t *nr,
		    struct ucr_pers_rec **pers, size_t *nr_pers,
		    uint64_t *retries, const char *what, struct ucr_err *err)
{
	struct kind kinds[2] = {
		{ .kind = UCR_REC_FILE, .size = sizeof(**f) },
		{ .kind = UCR_REC_PERS, .size = sizeof(**pers) },
	};
	int ret = walk_ring(p->skel->progs.ucr_files, ring_fd, lock_ms, kinds, 2, k,
			    retries, what, err);

	if (!ret) {
		*f = (struct ucr_file_rec *)kinds[0].objs;
		*nr = kinds[0].nr;
		*pers = (struct ucr_pers_rec *)kinds[1].objs;
		*nr_pers = kinds[1].nr;
	}
	return ret;
}

/* A walk of the owner's tasks by @prog: whole @size-byte records of @kind. */
static int task_walk(struct bpf_program *prog, pid_t pid, uint32_t kind, size_t size,
		     void **out, size_t *nr, const char *what, struct ucr_err *err)
{
	union bpf_iter_link_info linfo;
	LIBBPF_OPTS(bpf_iter_attach_opts, opts);
	struct bpf_link *link;
	size_t len, i;
	char *buf;
	int ret;

	memset(&linfo, 0, sizeof(linfo));
	linfo.task.pid = pid;
	opts.link_info = &linfo;
	opts.link_info_len = sizeof(linfo);
	link = bpf_program__attach_iter(prog, &opts);
	if (!link)
		return ucr_errf(err, -errno, "process %d: attaching the %s iterator: %s", pid, what,
				strerror(errno));
	ret = read_all(link, 0, &buf, &len, NULL, what, err);
	bpf_link__destroy(link);
	if (ret)
		return ret;
	if (len % size) {
		free(buf);
		return ucr_errf(err, -EPROTO, "process %d: %s walk of %zu bytes is not whole records",
				pid, what, len);
	}
	for (i = 0; i < len / size; i++) {
		uint32_t k;

		memcpy(&k, buf + i * size, sizeof(k));
		if (k != kind) {
			free(buf);
			return ucr_errf(err, -EPROTO, "process %d: %s walk record %zu is of another kind",
					pid, what, i);
		}
	}
	*out = buf;
	*nr = len / size;
	return 0;
}

int ucr_probe_tregs(struct ucr_probe *p, pid_t pid, struct ucr_treg_rec **t,
		    size_t *nr, struct ucr_err *err)
{
	return task_walk(p->skel->progs.ucr_tasks, pid, UCR_REC_TREG, sizeof(**t),
			 (void **)t, nr, "task", err);
}

int ucr_probe_task_files(struct ucr_probe *p, pid_t pid, struct ucr_tfile_rec **t,
			 size_t *nr, struct ucr_err *err)
{
	return task_walk(p->skel->progs.ucr_task_files, pid, UCR_REC_TFILE, sizeof(**t),
			 (void **)t, nr, "task_file", err);
}
