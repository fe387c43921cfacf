// SPDX-License-Identifier: GPL-2.0
/*
 * Restore (README.md, "Restore"): one ring of an image into the calling
 * process, through io_uring's existing UAPI only.
 *
 * The ring is set up IORING_SETUP_R_DISABLED whatever the image says, so
 * that everything is registered before anything can be submitted:
 * restrictions can only be registered then, another process (the
 * personality helpers of creds.c) may only register then on a
 * SINGLE_ISSUER ring, and enabling from the calling thread makes it the
 * ring's submitter. Then the counters are replayed (replay.c) and the
 * application-owned memory of the ring is written back: the SQ array, the
 * SQEs (the unsubmitted ones among them), the CQEs (the unreaped ones and
 * their CQE32 extras), the heads and tails the application owns.
 *
 * The buffers' addresses are reserved first with MAP_FIXED_NOREPLACE, so
 * that nothing of ours lands there meanwhile and nothing of the caller's is
 * ever replaced. The ring itself cannot go back to the owner's addresses in
 * 6.12 (final_maps()).
 *
 * On failure everything is undone: closing the ring drops its buffers,
 * files and personalities; the mappings, the eventfd, the registered ring
 * index and the io-wq limits are put back by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "creds.h"
#include "order.h"
#include "restore.h"

void ucr_restore_opts_default(struct ucr_restore_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mem = UCR_MEM_CREATE;
	o->evfd = -1;
}

unsigned int ucr_image_nr_rings(const struct ucr_image *img)
{
	return img->nr_rings;
}



static const char *map_name(uint64_t pgoff)
{
	return pgoff == IORING_OFF_SQ_RING ? "IORING_OFF_SQ_RING" :
	       pgoff == IORING_OFF_CQ_RING ? "IORING_OFF_CQ_RING" :
	       pgoff == IORING_OFF_SQES ? "IORING_OFF_SQES" : "an unknown offset";
}


/*
 * The ring IORING_SETUP_ATTACH_WQ names (p->wq_fd): on SQPOLL the image's
 * first ring on the same SQ thread, restored before; for the first ring
 * itself, and without SQPOLL (where 6.12 only checks that wq_fd is a ring),
 * a ring of our own set up for the purpose, *@tmp, closed after the setup:
 * the thread it starts stays with the ring attached to it.
 */
static int attach_to(struct rst *s, struct io_uring_params *p, int *tmp)
{
	const struct ucr_ring *r = s->r;
	struct io_uring_params tp;
	int high;

	if (r->sq_share >= 0 && (unsigned int)r->sq_share != s->idx) {
		const struct ucr_restored *peer = (unsigned int)r->sq_share < s->o->nr_peers ?
						  &s->o->peers[r->sq_share] : NULL;

		if (!peer || peer->fd < 0)
			return ucr_errf(s->err, -EINVAL,
					"the ring shares the SQPOLL thread of the image's ring fd %d, which is not restored in this process: restore the rings in the image's order, each with the earlier ones in opts.peers (ucr_restore_image() does)",
					s->img->rings[r->sq_share].fd);
		p->wq_fd = peer->fd;
		return 0;
	}
	memset(&tp, 0, sizeof(tp));
	tp.flags = r->k.flags & (IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF);
	tp.sq_thread_idle = r->sq_thread_idle_ms;
	tp.sq_thread_cpu = p->sq_thread_cpu;
	*tmp = sys_setup(1, &tp);
	if (*tmp < 0)
		return ucr_errf(s->err, -errno, "a ring to attach to (flags 0x%x): %s", tp.flags,
				strerror(errno));
	/*
	 * Out of the way: the ring set up next takes the lowest free fd, as
	 * without it, so that rings restored in a row keep the image's (fd)
	 * order.
	 */
	high = fcntl(*tmp, F_DUPFD_CLOEXEC, 256);
	if (high >= 0) {
		close(*tmp);
		*tmp = high;
	}
	p->wq_fd = *tmp;
	return 0;
}

static int setup(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	struct io_uring_params *p = &s->out->params;
	int tmp = -1, e;

	s->step = "io_uring_setup";
	memset(p, 0, sizeof(*p));
	p->flags = r->k.flags | IORING_SETUP_R_DISABLED;
	p->cq_entries = r->k.cq_entries;
	p->sq_thread_idle = r->sq_thread_idle_ms;
	if (r->k.flags & IORING_SETUP_SQ_AFF)
		p->sq_thread_cpu = r->k.sq_cpu;
	if ((r->k.flags & IORING_SETUP_ATTACH_WQ) && attach_to(s, p, &tmp))
		return s->err->code;
	s->w.fd = sys_setup(r->k.sq_entries, p);
	e = errno;
	if (tmp >= 0)
		close(tmp);
	errno = e;
	if (s->w.fd < 0)
		return ucr_errf(s->err, -errno,
				"flags 0x%x, %u SQ and %u CQ entries: %s%s", p->flags,
				r->k.sq_entries, r->k.cq_entries, strerror(errno),
				errno == EINVAL ? " (the kernel does not take these setup flags)" : "");
	s->out->fd = s->w.fd;
	if (p->sq_entries != r->k.sq_entries || p->cq_entries != r->k.cq_entries)
		return ucr_errf(s->err, -EPROTO,
				"the new ring has %u SQ and %u CQ entries, the image %u and %u",
				p->sq_entries, p->cq_entries, r->k.sq_entries, r->k.cq_entries);
	s->w.p = p;
	s->step = "mapping the new ring";
	return ucr_work_map(&s->w, s->err);
}


/* Reopens a registered file by its path and checks it is the same file. */
static int reopen(struct rst *s, const struct ucr_file *f)
{
	int flags = f->f_flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
	struct stat st;
	int fd;

	/* bpf_d_path() gave the file's own path: no symlink at its end */
	fd = open(f->path, flags | O_CLOEXEC);
	if (fd < 0)
		return ucr_errf(s->err, -errno, "file slot %u: opening %s (flags 0%o): %s",
				f->slot, f->path, flags, strerror(errno));
	if (fstat(fd, &st) || major(st.st_dev) != (f->dev >> 20) ||
	    minor(st.st_dev) != (f->dev & 0xfffff) || st.st_ino != f->ino) {
		close(fd);
		return ucr_errf(s->err, -ESTALE,
				"file slot %u: %s is now another file (device %u:%u inode %llu, the image has %u:%u inode %" PRIu64 "): restore the file system first",
				f->slot, f->path, major(st.st_dev), minor(st.st_dev),
				(unsigned long long)st.st_ino, (unsigned int)(f->dev >> 20),
				(unsigned int)(f->dev & 0xfffff), f->ino);
	}
	if (f->pos && !(flags & O_PATH) && lseek(fd, f->pos, SEEK_SET) != f->pos) {
		int e = errno;

		close(fd);
		return ucr_errf(s->err, -e, "file slot %u: %s: seeking to %" PRId64 ": %s",
				f->slot, f->path, f->pos, strerror(e));
	}
	return fd;
}

#define FILES_CHUNK	256	/* files open at once: well below RLIMIT_NOFILE's 1024 */

/*
 * Files [first, last] of the image's list into their slots with one
 * IORING_REGISTER_FILES_UPDATE2; slots between them are skipped.
 */
static int files_chunk(struct rst *s, unsigned int first, unsigned int last, int *fds)
{
	const struct ucr_file *f = s->r->files;
	uint32_t base = f[first].slot, n = f[last].slot - base + 1, i;
	struct io_uring_rsrc_update2 up = {
		.offset = base, .data = (uint64_t)(uintptr_t)fds, .nr = n,
	};
	int ret = 0, got;

	for (i = 0; i < n; i++)
		fds[i] = IORING_REGISTER_FILES_SKIP;
	s->step = "reopening the registered files";
	for (i = first; i <= last && ret >= 0; i++) {
		ret = reopen(s, &f[i]);
		if (ret >= 0)
			fds[f[i].slot - base] = ret;
	}
	if (ret >= 0) {
		s->step = "IORING_REGISTER_FILES_UPDATE2";
		got = sys_register(s->w.fd, IORING_REGISTER_FILES_UPDATE2, &up, sizeof(up));
		if (got != (int)n)
			ret = got < 0 ? sysfail(s, "registering the files") :
			      ucr_errf(s->err, -EIO, "registering the files: %d of %u slots taken",
				       got, n);
	}
	/* the ring holds its own references: no fd of them stays behind */
	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret < 0 ? ret : 0;
}

/*
 * A sparse table of the image's size, then the files in chunks: 65536
 * files cannot all be open at once under the default RLIMIT_NOFILE.
 */
static int files(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	struct io_uring_rsrc_register rr = {
		.nr = r->nr_files, .flags = IORING_RSRC_REGISTER_SPARSE,
	};
	struct rlimit old, lim;
	unsigned int i, first;
	int *fds, ret;

	if (!r->nr_files)
		return 0;
	s->step = "IORING_REGISTER_FILES2";
	/*
	 * io_uring takes no table larger than RLIMIT_NOFILE: the owner had
	 * raised it. Raised as far as needed for the call, then put back.
	 */
	if (getrlimit(RLIMIT_NOFILE, &old))
		return sysfail(s, "getrlimit(RLIMIT_NOFILE)");
	lim = old;
	if (lim.rlim_cur < r->nr_files) {
		lim.rlim_cur = r->nr_files;
		if (lim.rlim_max < r->nr_files)
			lim.rlim_max = r->nr_files;	/* CAP_SYS_RESOURCE */
		if (setrlimit(RLIMIT_NOFILE, &lim))
			return ucr_errf(s->err, -EMFILE,
					"the file table has %u slots, and io_uring takes at most RLIMIT_NOFILE (soft %llu, hard %llu), which could not be raised: %s; raise it (ulimit -n), or restore with CAP_SYS_RESOURCE",
					r->nr_files, (unsigned long long)old.rlim_cur,
					(unsigned long long)old.rlim_max, strerror(errno));
	}
	ret = sys_register(s->w.fd, IORING_REGISTER_FILES2, &rr, sizeof(rr));
	if (ret < 0)
		ret = sysfail(s, "registering a sparse file table");
	if (lim.rlim_cur != old.rlim_cur || lim.rlim_max != old.rlim_max)
		setrlimit(RLIMIT_NOFILE, &old);
	if (ret < 0)
		return ret;
	fds = malloc(r->nr_files * sizeof(*fds));
	if (!fds)
		return ucr_errf(s->err, -ENOMEM, "out of memory");
	ret = 0;
	for (first = 0; first < r->nr_used_files && !ret; first = i + 1) {
		i = first + FILES_CHUNK - 1 < r->nr_used_files ? first + FILES_CHUNK - 1 :
		    r->nr_used_files - 1;
		ret = files_chunk(s, first, i, fds);
	}
	free(fds);
	if (ret)
		return ret;
	if (r->k.file_alloc_start == 0 && r->k.file_alloc_end == r->nr_files)
		return 0;
	s->step = "IORING_REGISTER_FILE_ALLOC_RANGE";
	{
		struct io_uring_file_index_range range = {
			.off = r->k.file_alloc_start,
			.len = r->k.file_alloc_end - r->k.file_alloc_start,
		};

		if (sys_register(s->w.fd, IORING_REGISTER_FILE_ALLOC_RANGE, &range, 0) < 0)
			return sysfail(s, "setting the file allocation range");
	}
	return 0;
}

static int settings(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	const struct ucr_ring_rec *k = &r->k;

	if (r->evfd >= 0) {
		s->step = k->evfd_async ? "IORING_REGISTER_EVENTFD_ASYNC" : "IORING_REGISTER_EVENTFD";
		int evfd = s->o->evfd;
		unsigned int j;

		/* one eventfd for several rings: the earlier ring's, shared again */
		for (j = 0; evfd < 0 && j < s->idx && j < s->o->nr_peers; j++) {
			const struct ucr_restored *peer = &s->o->peers[j];

			if (s->img->rings[j].evfd != r->evfd || peer->fd < 0 || peer->evfd < 0)
				continue;
			evfd = fcntl(peer->evfd, F_DUPFD_CLOEXEC, 0);
			if (evfd < 0)
				return sysfail(s, "dup() of the eventfd it shares");
			s->out->evfd = evfd;
		}
		if (evfd < 0) {
			if (r->evfd_count > UINT32_MAX)
				return ucr_errf(s->err, -EINVAL,
						"the eventfd's count %" PRIu64 " is more than eventfd() takes",
						r->evfd_count);
			evfd = eventfd(r->evfd_count, EFD_CLOEXEC);
			if (evfd < 0)
				return sysfail(s, "eventfd()");
			s->out->evfd = evfd;
		}
		if (sys_register(s->w.fd, k->evfd_async ? IORING_REGISTER_EVENTFD_ASYNC :
			       IORING_REGISTER_EVENTFD, &evfd, 1) < 0)
			return sysfail(s, "registering the eventfd");
	}
	if (k->iowq_limits_set) {
		unsigned int v[2] = { k->iowq_limits[0], k->iowq_limits[1] };

		s->step = "IORING_REGISTER_IOWQ_MAX_WORKERS";
		if (sys_register(s->w.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2) < 0)
			return sysfail(s, "setting the io-wq limits");
		s->iowq = true;
		s->iowq_old[0] = v[0];
		s->iowq_old[1] = v[1];
	}
	if (k->clockid != CLOCK_MONOTONIC) {
		struct ucr_clock_register c = { .clockid = k->clockid };

		s->step = "IORING_REGISTER_CLOCK";
		if (sys_register(s->w.fd, UCR_REGISTER_CLOCK, &c, 0) < 0)
			return sysfail(s, "setting the clock");
	}
	if (k->napi_enabled) {
		/*
		 * The settings only: the NAPI ids the ring tracked belong to the
		 * old host's devices, and io_uring adds the new ones itself as
		 * requests poll their sockets.
		 */
		struct ucr_napi napi = {
			.busy_poll_to = k->napi_busy_poll_us,
			.prefer_busy_poll = k->napi_prefer,
		};

		s->step = "IORING_REGISTER_NAPI";
		if (sys_register(s->w.fd, UCR_REGISTER_NAPI, &napi, 1) < 0)
			return sysfail(s, "setting NAPI busy polling");
	}
	if (r->nr_pers || k->pers_next) {
		s->step = "IORING_REGISTER_PERSONALITY";
		if (ucr_pers_restore(s->w.fd, r->pers, r->nr_pers, k->pers_next,
				     &s->out->stats.pers_calls, s->err))
			return s->err->code;
	}
	return 0;
}

static int restrictions(struct rst *s)
{
	const struct ucr_ring_rec *k = &s->r->k;
	struct io_uring_restriction res[130];
	unsigned int n = 0, i;

	if (!k->restrictions_registered)
		return 0;
	s->step = "IORING_REGISTER_RESTRICTIONS";
	memset(res, 0, sizeof(res));
	for (i = 0; i < 64; i++) {
		if (k->restrict_register_op & (1ULL << i)) {
			res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
			res[n++].register_op = i;
		}
		if (k->restrict_sqe_op & (1ULL << i)) {
			res[n].opcode = IORING_RESTRICTION_SQE_OP;
			res[n++].sqe_op = i;
		}
	}
	if (k->restrict_flags_allowed) {
		res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
		res[n++].sqe_flags = k->restrict_flags_allowed;
	}
	if (k->restrict_flags_required) {
		res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
		res[n++].sqe_flags = k->restrict_flags_required;
	}
	if (sys_register(s->w.fd, IORING_REGISTER_RESTRICTIONS, res, n) < 0)
		return sysfail(s, "registering the restrictions");
	return 0;
}

/* The application-owned part of the ring memory, as the image has it. */
static void write_memory(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	struct ucr_work *w = &s->w;

	memcpy(w->cqes, r->cqes, (size_t)r->k.cq_entries * w->cqe_size);
	__atomic_store_n(w->cq_head, r->cq_head, __ATOMIC_RELEASE);
	__atomic_store_n(w->cq_flags, r->cq_flags, __ATOMIC_RELAXED);
	__atomic_store_n(w->cq_overflow, r->cq_overflow, __ATOMIC_RELAXED);
	__atomic_store_n(w->sq_dropped, r->sq_dropped, __ATOMIC_RELAXED);
	if (w->sq_array && r->sq_array)
		memcpy(w->sq_array, r->sq_array, r->k.sq_entries * sizeof(uint32_t));
	memcpy(w->sqes, r->sqes, (size_t)r->k.sq_entries * w->sqe_size);
	/* last: on SQPOLL the SQ thread takes what lies below the tail */
	__atomic_store_n(w->sq_tail, r->sq_tail, __ATOMIC_RELEASE);
}

/*
 * The owner's mappings of the ring, with the same offsets and lengths. 6.12
 * cannot put them at the owner's addresses: io_uring_get_unmapped_area()
 * fails any non-zero address with -EINVAL, and both mmap(MAP_FIXED) and
 * mremap(MREMAP_FIXED) go through it. The fixed address is tried first
 * (MAP_FIXED_NOREPLACE: a kernel that allows it gets the exact layout),
 * then the ring is mapped where the kernel chooses ("relocated").
 */
static int final_maps(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	unsigned int i;

	s->step = "mapping the ring";
	for (i = 0; i < r->nr_maps; i++) {
		const struct ucr_map *m = &r->maps[i];
		size_t len = m->end - m->start;
		int prot = PROT_READ | PROT_WRITE;
		void *p = mmap((void *)m->start, len, prot, MAP_SHARED | MAP_FIXED_NOREPLACE,
			       s->w.fd, m->pgoff);

		if (p != MAP_FAILED && p != (void *)m->start) {
			munmap(p, len);
			p = MAP_FAILED;
		}
		if (p == MAP_FAILED) {
			p = mmap(NULL, len, prot, MAP_SHARED, s->w.fd, m->pgoff);
			if (p == MAP_FAILED)
				return ucr_errf(s->err, -errno, "mapping %s (%zu bytes): %s",
						map_name(m->pgoff), len, strerror(errno));
			s->out->relocated = true;
		}
		s->out->maps[i].addr = p;
		s->out->maps[i].len = len;
		s->out->maps[i].pgoff = m->pgoff;
		s->out->nr_maps = i + 1;
	}
	return 0;
}

static int run(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	uint64_t n_nops, n_drops, n_msgs;
	int ret;

	s->step = "checking the image";
	/* from a new 6.12 ring's counters; replay.c plans again from the ring's own */
	ucr_replay_plan(0, 0, r->k.cached_sq_head, r->k.cached_cq_tail, &n_nops, &n_drops,
			&n_msgs);
	if (n_drops && (r->k.flags & IORING_SETUP_NO_SQARRAY))
		return ucr_errf(s->err, -EOPNOTSUPP,
				"the SQ head is %" PRIu64 " past the CQ tail, and a ring without an SQ array (IORING_SETUP_NO_SQARRAY) cannot move its SQ head alone without IOSQE_CQE_SKIP_SUCCESS, which would disable IOSQE_IO_DRAIN for good",
				n_drops);
	if (s->o->max_replay && n_nops + n_drops + n_msgs > s->o->max_replay)
		return ucr_errf(s->err, -E2BIG,
				"the counters (SQ head %u, CQ tail %u) take %" PRIu64 " operations to replay, more than the %" PRIu64 " allowed",
				r->k.cached_sq_head, r->k.cached_cq_tail, n_nops + n_drops + n_msgs,
				s->o->max_replay);
	ret = ucr_share_plan(s->img->rings, s->img->nr_rings, s->idx, &s->sh, s->err->msg,
			     sizeof(s->err->msg));
	if (ret == -ENOMEM)
		return ucr_errf(s->err, ret, "out of memory");
	if (ret) {		/* the plan's sentence is in the message already */
		s->err->code = ret;
		return ret;
	}
	ret = ucr_rst_reserve(s);
	if (!ret)
		ret = setup(s);
	if (!ret)
		ret = ucr_rst_buffers(s);
	if (!ret)
		ret = files(s);
	if (!ret)
		ret = settings(s);
	if (!ret)
		ret = restrictions(s);
	if (ret)
		return ret;
	if (!(r->k.flags & IORING_SETUP_R_DISABLED)) {
		s->step = "IORING_REGISTER_ENABLE_RINGS";
		if (sys_register(s->w.fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
			return sysfail(s, "enabling the ring");
		s->step = "replaying the counters";
		/* the replay's CQEs must not signal the eventfd: its count is the image's */
		__atomic_store_n(s->w.cq_flags, IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELEASE);
		ret = ucr_replay(&s->w, r, &s->out->stats, s->o->progress, s->err);
		if (ret)
			return ret;
	}
	write_memory(s);
	if (r->reg_index >= 0) {
		struct io_uring_rsrc_update u = { .offset = r->reg_index, .data = s->w.fd };

		s->step = "IORING_REGISTER_RING_FDS";
		if (sys_register(s->w.fd, IORING_REGISTER_RING_FDS, &u, 1) != 1)
			return sysfail(s, "registering the ring fd at its index");
		s->reg_ring = true;
	}
	return final_maps(s);
}

static void undo(struct rst *s)
{
	unsigned int i;

	if (s->reg_ring) {
		struct io_uring_rsrc_update u = { .offset = s->r->reg_index };

		sys_register(s->w.fd, IORING_UNREGISTER_RING_FDS, &u, 1);
	}
	if (s->iowq)	/* the limits are the task's io-wq's: put them back */
		sys_register(s->w.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, s->iowq_old, 2);
	for (i = 0; i < s->out->nr_maps; i++)
		munmap(s->out->maps[i].addr, s->out->maps[i].len);
	s->out->nr_maps = 0;
	if (s->w.fd >= 0)
		close(s->w.fd);
	s->out->fd = -1;
	if (s->out->evfd >= 0)
		close(s->out->evfd);
	s->out->evfd = -1;
	for (i = 0; i < s->nr_reg; i++)
		if (s->reg[i].placed)
			munmap((void *)s->reg[i].start, s->reg[i].end - s->reg[i].start);
}

/*
 * Ring @idx, after the rings of the image whose memory @pg holds: on
 * success its memory joins @pg, on failure what it mapped goes. @part:
 * its index in the image as written (the messages name it).
 */
static int restore_one(const struct ucr_image *img, unsigned int idx, unsigned int part,
		       const struct ucr_restore_opts *o, struct ucr_restored *out,
		       struct ucr_pages *pg, struct ucr_err *err)
{
	struct rst s = {
		.img = img, .idx = idx, .part = part, .o = o, .out = out, .err = err, .pg = pg,
		.w = { .fd = -1 }, .step = "checking the image",
	};
	uint64_t t0 = ucr_now_us();
	int ret;

	err->code = 0;
	err->msg[0] = '\0';
	if (idx >= img->nr_rings)
		return ucr_errf(err, -EINVAL, "image %s has %u ring%s, no ring %u", img->dir,
				img->nr_rings, img->nr_rings == 1 ? "" : "s", idx);
	s.r = &img->rings[idx];
	ret = run(&s);
	ucr_work_unmap(&s.w);
	if (!ret && ucr_pages_commit(pg, idx, s.reg, s.nr_reg))
		ret = ucr_errf(err, -ENOMEM, "out of memory");
	if (ret) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		undo(&s);
		ucr_errf(err, ret, "image %s, ring %u (part ring%u.txt), %s: %s", img->dir, part,
			 part, s.step, why);
	}
	free(s.reg);
	ucr_share_free(&s.sh);
	out->stats.restore_us = ucr_now_us() - t0;
	return ret;
}

/* Nothing restored yet: what the caller gets back on any failure. */
static void clear_restored(struct ucr_restored *out, unsigned int nr)
{
	unsigned int i;

	memset(out, 0, nr * sizeof(*out));
	for (i = 0; i < nr; i++)
		out[i].fd = out[i].evfd = -1;
}

/*
 * What the earlier rings restored into this process (opts.peers) mapped,
 * planned again as their own restores planned it.
 */
static int peers_pages(const struct ucr_image *img, unsigned int idx,
		       const struct ucr_restore_opts *o, struct ucr_pages *pg,
		       struct ucr_err *err)
{
	unsigned int j;

	char why[sizeof(err->msg)];

	for (j = 0; j < idx && j < o->nr_peers && j < img->nr_rings; j++) {
		const char *refused;
		int ret;

		if (o->peers[j].fd < 0)
			continue;
		ret = ucr_pages_ring(pg, j, o->mem == UCR_MEM_EXISTING, &refused, why,
				     sizeof(why));
		if (ret == -ENOMEM)
			return ucr_errf(err, ret, "out of memory");
		if (ret)
			return ucr_errf(err, ret, "image %s, ring %u, which opts.peers says was restored: %s",
					img->dir, j, why);
	}
	return 0;
}

int ucr_restore_ring(const struct ucr_image *img, unsigned int idx,
		     const struct ucr_restore_opts *o, struct ucr_restored *out,
		     struct ucr_err *err)
{
	struct ucr_pages pg;
	int ret;

	ucr_pages_init(&pg, img->rings, img->nr_rings, false);
	clear_restored(out, 1);
	ret = peers_pages(img, idx, o, &pg, err);
	if (!ret)
		ret = restore_one(img, idx, idx, o, out, &pg, err);
	ucr_pages_free(&pg);	/* the peers' memory is theirs, ours the caller's */
	return ret;
}

/*
 * After a restore in another order than the image's (order.c): the rings'
 * fds in the image's order again, the i-th ring of the image on the i-th
 * lowest of them, as the owner had them (a dump lists rings by fd).
 */
static int renumber(struct ucr_restored *out, unsigned int nr, struct ucr_err *err)
{
	unsigned int i, j;

	for (i = 0; i < nr; i++) {
		unsigned int low = i;
		int tmp, fd;

		for (j = i + 1; j < nr; j++)
			if (out[j].fd < out[low].fd)
				low = j;
		if (low == i)
			continue;
		/* ring i takes ring low's number and ring low ring i's */
		tmp = fcntl(out[i].fd, F_DUPFD_CLOEXEC, 0);
		if (tmp < 0 || dup3(out[low].fd, out[i].fd, O_CLOEXEC) < 0 ||
		    dup3(tmp, out[low].fd, O_CLOEXEC) < 0) {
			ucr_errf(err, -errno, "giving the restored rings their fds in the image's order: %s",
				 strerror(errno));
			if (tmp >= 0)
				close(tmp);
			return err->code;
		}
		close(tmp);
		fd = out[i].fd;
		out[i].fd = out[low].fd;
		out[low].fd = fd;
	}
	return 0;
}

int ucr_restore_image(const struct ucr_image *img, const struct ucr_restore_opts *o,
		      struct ucr_restored *out, struct ucr_err *err)
{
	unsigned int i, done = 0, nr = img->nr_rings, *order = calloc(nr + 1, sizeof(*order));
	struct ucr_ring *rings = calloc(nr + 1, sizeof(*rings));
	struct ucr_restored *in_order = calloc(nr + 1, sizeof(*in_order));
	struct ucr_restore_opts ro = *o;
	struct ucr_image *pimg = malloc(sizeof(*pimg));
	struct ucr_pages pg;
	int ret;

	clear_restored(out, nr);
	ucr_pages_init(&pg, NULL, 0, true);
	/* on -EOPNOTSUPP or -E2BIG, the image's order, whose plans say what fails where */
	if (!order || !rings || !in_order || !pimg ||
	    ucr_order_find(img->rings, nr, o->mem == UCR_MEM_EXISTING, order) == -ENOMEM) {
		ret = ucr_errf(err, -ENOMEM, "out of memory");
		goto out;
	}
	ucr_order_apply(img->rings, nr, order, rings);
	*pimg = *img;
	pimg->rings = rings;
	ucr_pages_init(&pg, rings, nr, true);
	clear_restored(in_order, nr);
	for (ret = 0; done < nr && !ret; done++) {
		ro.peers = in_order;
		ro.nr_peers = done;
		ret = restore_one(pimg, done, order[done], &ro, &in_order[done], &pg, err);
	}
	if (ret) {
		done--;		/* the failed one undid itself */
		goto out;
	}
	for (i = 0; i < nr; i++)
		out[order[i]] = in_order[i];
	ret = renumber(out, nr, err);
	if (ret) {
		for (i = 0; i < nr; i++)
			ucr_restored_close(&out[i]);
		clear_restored(out, nr);
		done = 0;	/* in_order's fds were out's */
	}
out:
	if (ret) {
		/* the earlier rings, and the memory they mapped or kept for later rings */
		for (i = 0; in_order && i < done; i++)
			ucr_restored_close(&in_order[i]);
		for (i = 0; i < pg.nr_mapped; i++)
			if (pg.mapped[i].placed)
				munmap((void *)pg.mapped[i].start,
				       pg.mapped[i].end - pg.mapped[i].start);
	}
	ucr_pages_free(&pg);
	free(pimg);
	free(in_order);
	free(rings);
	free(order);
	return ret;
}

void ucr_restored_close(struct ucr_restored *r)
{
	unsigned int i;

	for (i = 0; i < r->nr_maps; i++)
		munmap(r->maps[i].addr, r->maps[i].len);
	r->nr_maps = 0;
	if (r->evfd >= 0)
		close(r->evfd);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = r->evfd = -1;
}
