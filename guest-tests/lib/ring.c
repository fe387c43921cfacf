// SPDX-License-Identifier: GPL-2.0
/*
 * Ring set-up and bounded waits (ring.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "ktap.h"
#include "ring.h"

int ring_init(struct io_uring *ring, struct io_uring_params *p,
	      unsigned int entries, unsigned int cq_entries,
	      unsigned int flags, unsigned int sq_idle_ms)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->flags = flags;
	if (cq_entries) {
		p->flags |= IORING_SETUP_CQSIZE;
		p->cq_entries = cq_entries;
	}
	if (flags & IORING_SETUP_SQPOLL)
		p->sq_thread_idle = sq_idle_ms;
	ret = io_uring_queue_init_params(entries, ring, p);
	if (ret)
		t_diag("io_uring_queue_init_params: %s", strerror(-ret));
	else
		ring_sync(ring);
	return ret;
}

void ring_sync(struct io_uring *ring)
{
	ring->sq.sqe_head = *ring->sq.ktail;
	ring->sq.sqe_tail = *ring->sq.ktail;
}

#ifndef IORING_REGISTER_CLONE_BUFFERS
#define IORING_REGISTER_CLONE_BUFFERS	30
#endif

struct clone_buffers {		/* UAPI struct io_uring_clone_buffers, 6.12 */
	__u32 src_fd;
	__u32 flags;
	__u32 pad[6];
};

int ring_clone_buffers(struct io_uring *dst, struct io_uring *src)
{
	struct clone_buffers cb = { .src_fd = src->ring_fd };

	if (syscall(__NR_io_uring_register, dst->ring_fd, IORING_REGISTER_CLONE_BUFFERS, &cb, 1))
		return -errno;
	return 0;
}

int ring_attach(struct io_uring *ring, struct io_uring *to, unsigned int flags,
		unsigned int idle_ms)
{
	struct io_uring_params p = {
		.flags = flags | IORING_SETUP_ATTACH_WQ, .wq_fd = to->ring_fd,
		.sq_thread_idle = idle_ms,
	};

	if (io_uring_queue_init_params(8, ring, &p))
		return -1;
	ring_sync(ring);
	return 0;
}

int ring_fd_above(struct io_uring *ring, int above)
{
	int moved = fcntl(ring->ring_fd, F_DUPFD_CLOEXEC, above + 1);

	if (moved < 0 || close(ring->ring_fd))
		return -1;
	ring->ring_fd = ring->enter_ring_fd = moved;
	return 0;
}

int ring_setup(struct io_uring *ring, unsigned int entries, bool sqpoll)
{
	struct io_uring_params p;

	return ring_init(ring, &p, entries, 0, sqpoll ? IORING_SETUP_SQPOLL : 0, 20);
}

/*
 * On an SQPOLL ring liburing returns SQ tail - head, only an estimate: the
 * SQ thread may have consumed the new SQEs already (0), or not yet committed
 * the head of ones whose CQEs are out (the completions are flushed before
 * the head is), so more than @n.
 */
int ring_submit(struct io_uring *ring, int n)
{
	int ret = io_uring_submit(ring);

	if (ret < 0)
		return ret;
	if (ring->flags & IORING_SETUP_SQPOLL)
		return 0;
	return ret == n ? 0 : -EIO;
}

int ring_wait_one(struct io_uring *ring, __u64 *user_data)
{
	struct __kernel_timespec ts = { .tv_sec = wait_s(15) };
	struct io_uring_cqe *cqe;
	int ret, res;

	ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (ret)
		return ret == -ETIME ? -ETIME : ret;
	res = cqe->res;
	if (user_data)
		*user_data = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

int ring_read(struct io_uring *ring, int fd, char *buf, unsigned int len,
	      unsigned int sqe_flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int ret;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, len, 0);
	sqe->flags |= sqe_flags;
	ret = ring_submit(ring, 1);
	return ret ? ret : ring_wait_one(ring, NULL);
}

int ring_submit_wait(struct io_uring *ring, int *res)
{
	struct __kernel_timespec ts = { .tv_sec = wait_s(20) };
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit(ring);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (ret)
		return ret;
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

int ring_sq_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "iou-sqp-", 8))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}
