// SPDX-License-Identifier: GPL-2.0
/*
 * The restore's buffers (restore.c, README.md "Restore", 1 and 3): the
 * memory the image fixes, reserved before anything else is mapped, then
 * mapped as its backing says and filled from the image; the table
 * registered in one call, or cloned from an earlier ring that shares it
 * (share.c) and updated where this ring differs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "restore.h"

static void *reserve(uint64_t start, uint64_t len)
{
	void *p = mmap((void *)start, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != MAP_FAILED && p != (void *)start) {
		/* a kernel before 4.17 took the flag as a hint */
		munmap(p, len);
		errno = EEXIST;
		return MAP_FAILED;
	}
	return p;
}

/* Every address the image fixes, taken before anything else is mapped. */
static int reserve_all(struct rst *s)
{
	unsigned int i;

	s->step = "reserving the buffers' addresses";
	for (i = 0; i < s->nr_reg; i++) {
		struct region *g = &s->reg[i];

		if (reserve(g->start, g->end - g->start) == MAP_FAILED)
			return errno == EEXIST ?
			       ucr_errf(s->err, -EEXIST,
					"buffer slot %u's memory 0x%" PRIx64 "-0x%" PRIx64 " is taken in this process: restore into a process where it is free",
					g->first->slot, g->start, g->end) :
			       sysfail(s, "reserving a buffer's memory");
		g->placed = true;
	}
	return 0;
}

/*
 * The file of a shared mapping: the path itself, or for a memfd (which
 * no path reaches again) a new memfd of the same name, at least @size.
 */
static int shared_file(const char *path, uint64_t size)
{
	static const char memfd[] = "/memfd:", deleted[] = " (deleted)";
	size_t len = strlen(path), dl = sizeof(deleted) - 1;
	char name[UCR_PATH_MAX];
	int fd;

	if (strncmp(path, memfd, sizeof(memfd) - 1) || len < sizeof(memfd) - 1 + dl ||
	    strcmp(path + len - dl, deleted))
		return open(path, O_RDWR | O_CLOEXEC);
	snprintf(name, sizeof(name), "%.*s", (int)(len - dl - (sizeof(memfd) - 1)),
		 path + sizeof(memfd) - 1);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, size)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int map_region(struct rst *s, const struct region *g)
{
	uint64_t len = g->end - g->start;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, fd = -1;
	uint64_t off = 0;
	void *p;

	if (g->kind == UCR_BACK_HUGETLB)
		flags |= MAP_HUGETLB | (g->shift << MAP_HUGE_SHIFT);
	if (g->kind == UCR_BACK_SHARED) {
		off = g->first->backing_off - (g->first->addr - g->start);
		fd = shared_file(g->first->backing_path, off + len);
		if (fd < 0)
			return ucr_errf(s->err, -errno,
					"buffer slot %u lies in a shared mapping of %s, which cannot be opened: %s",
					g->first->slot, g->first->backing_path, strerror(errno));
		flags = MAP_SHARED | MAP_FIXED;
	}
	p = mmap((void *)g->start, len, PROT_READ | PROT_WRITE, flags, fd, off);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return ucr_errf(s->err, -errno,
				"mapping buffer slot %u's memory 0x%" PRIx64 "-0x%" PRIx64 " (%s): %s%s",
				g->first->slot, g->start, g->end, ucr_backing_name(g->kind),
				strerror(errno),
				g->kind == UCR_BACK_HUGETLB ? " (are enough hugetlb pages reserved? /proc/sys/vm/nr_hugepages)" : "");
	if (g->kind != UCR_BACK_HUGETLB && g->shift >= 21)
		madvise(p, len, MADV_HUGEPAGE);	/* THP, as the owner had it */
	return 0;
}

static int fill_buf(struct rst *s, const struct ucr_buf *b)
{
	char path[4200];
	uint64_t got = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/ring%u.buf%u", s->img->dir, s->part, b->slot);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ucr_errf(s->err, -errno, "part ring%u.buf%u: %s", s->part, b->slot,
				strerror(errno));
	while (got < b->len) {
		ssize_t n = read(fd, (char *)b->addr + got, b->len - got);

		if (n <= 0) {
			close(fd);
			return ucr_errf(s->err, n ? -errno : -EINVAL,
					"part ring%u.buf%u: %s", s->part, b->slot,
					n ? strerror(errno) : "shorter than the buffer");
		}
		got += n;
	}
	close(fd);
	s->out->stats.bytes_read += b->len;
	return 0;
}

/* The image's table in one IORING_REGISTER_BUFFERS2: sparse slots stay so. */
static int register_bufs(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	struct iovec *iov;
	unsigned int i;
	int ret = 0;

	s->step = "IORING_REGISTER_BUFFERS2";
	iov = calloc(r->nr_bufs, sizeof(*iov));
	if (!iov)
		return ucr_errf(s->err, -ENOMEM, "out of memory");
	for (i = 0; i < r->nr_used_bufs; i++) {
		iov[r->bufs[i].slot].iov_base = (void *)r->bufs[i].addr;
		iov[r->bufs[i].slot].iov_len = r->bufs[i].len;
	}
	{
		struct io_uring_rsrc_register rr = {
			.nr = r->nr_bufs, .data = (uint64_t)(uintptr_t)iov,
		};

		if (sys_register(s->w.fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr)) < 0)
			ret = sysfail(s, "registering the buffers");
	}
	free(iov);
	return ret;
}

static int update_buf(struct rst *s, uint32_t slot, const struct ucr_buf *b)
{
	struct iovec iov = {
		.iov_base = b ? (void *)b->addr : NULL, .iov_len = b ? b->len : 0,
	};
	struct io_uring_rsrc_update2 up = {
		.offset = slot, .data = (uint64_t)(uintptr_t)&iov, .nr = 1,
	};
	int got = sys_register(s->w.fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));

	if (got == 1)
		return 0;
	return got < 0 ? ucr_errf(s->err, -errno, "slot %u: %s", slot, strerror(errno)) :
	       ucr_errf(s->err, -EIO, "slot %u: %d slots updated, not 1", slot, got);
}

/*
 * The sharing (share.c): the whole table of the earlier ring @s->sh.src,
 * then each slot where this ring differs from it replaced: by this ring's
 * own buffer, or emptied. The clone needs no mapping of the shared pages.
 */
static int clone_bufs(struct rst *s)
{
	const struct ucr_ring *r = s->r, *src = &s->img->rings[s->sh.src];
	const struct ucr_restored *peer;
	struct ucr_clone_buffers cb = {};
	uint32_t i;
	int ret;

	s->step = "IORING_REGISTER_CLONE_BUFFERS";
	peer = (unsigned int)s->sh.src < s->o->nr_peers ? &s->o->peers[s->sh.src] : NULL;
	if (!peer || peer->fd < 0)
		return ucr_errf(s->err, -EINVAL,
				"the ring shares buffers with the image's ring fd %d, which is not restored in this process: restore the rings in the image's order, each with the earlier ones in opts.peers (ucr_restore_image() does)",
				src->fd);
	cb.src_fd = peer->fd;
	if (sys_register(s->w.fd, UCR_REGISTER_CLONE_BUFFERS, &cb, 1) < 0)
		return ucr_errf(s->err, -errno, "cloning the buffers of the image's ring fd %d: %s%s", src->fd,
				strerror(errno),
				errno == EINVAL ? " (both rings must belong to one process and user)" : "");
	s->step = "IORING_REGISTER_BUFFERS_UPDATE";
	for (i = 0; i < r->nr_used_bufs; i++) {
		if (s->sh.cloned[i])
			continue;
		ret = update_buf(s, r->bufs[i].slot, &r->bufs[i]);
		if (ret)
			return ret;
	}
	for (i = 0; i < src->nr_used_bufs; i++) {
		if (ucr_buf_at(r, src->bufs[i].slot))
			continue;
		ret = update_buf(s, src->bufs[i].slot, NULL);	/* sparse here */
		if (ret)
			return ret;
	}
	return 0;
}

int ucr_rst_buffers(struct rst *s)
{
	const struct ucr_ring *r = s->r;
	unsigned int i;
	int ret = 0;

	if (!r->nr_bufs)
		return 0;
	s->step = "mapping the buffers' memory";
	for (i = 0; i < s->nr_reg && !ret; i++)
		ret = map_region(s, &s->reg[i]);
	s->step = "filling the buffers";
	for (i = 0; i < r->nr_used_bufs && !ret; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		if (!s->sh.cloned[i] &&
		    (s->o->mem == UCR_MEM_CREATE || b->backing == UCR_BACK_GONE))
			ret = fill_buf(s, b);
	}
	if (ret)
		return ret;
	ret = s->sh.src >= 0 ? clone_bufs(s) : register_bufs(s);
	if (ret)
		return ret;
	/*
	 * What the owner had unmapped goes again, the ring keeps the pages:
	 * ours, and an earlier ring's left for us (pages.c), unless a later
	 * ring of this restore pins the same pages.
	 */
	s->step = "unmapping the buffers the owner had unmapped";
	for (i = 0; i < s->nr_reg + s->pg->nr_mapped; i++) {
		struct region *g = i < s->nr_reg ? &s->reg[i] : &s->pg->mapped[i - s->nr_reg];

		if (g->kind != UCR_BACK_GONE || g->last != s->idx || !g->placed)
			continue;
		if (munmap((void *)g->start, g->end - g->start))
			return sysfail(s, "unmapping a buffer");
		g->placed = false;
	}
	return 0;
}

int ucr_rst_reserve(struct rst *s)
{
	int ret = ucr_pages_plan(s->pg, s->idx, s->sh.cloned, s->o->mem == UCR_MEM_EXISTING,
				 &s->reg, &s->nr_reg, s->err->msg, sizeof(s->err->msg));

	if (ret == -ENOMEM)
		return ucr_errf(s->err, ret, "out of memory");
	if (ret) {		/* the plan's sentence is in the message already */
		s->err->code = ret;
		return ret;
	}
	return reserve_all(s);
}
