// SPDX-License-Identifier: GPL-2.0
/*
 * A struct io_uring over a restored ring, for liburing users. Only this
 * file needs liburing: a program that calls ucr_restored_liburing() links
 * -luring, others need not.
 */
#include <errno.h>
#include <string.h>

#include <liburing.h>

#include "internal.h"

int ucr_restored_liburing(const struct ucr_restored *r, struct io_uring *ring,
			  struct ucr_err *err)
{
	struct io_uring_params p = r->params;
	int ret;

	p.flags &= ~IORING_SETUP_R_DISABLED;
	ret = io_uring_queue_mmap(r->fd, &p, ring);
	if (ret)
		return ucr_errf(err, ret, "io_uring_queue_mmap() of the restored ring: %s",
				strerror(-ret));
	/*
	 * liburing counts its SQEs from sqe_head/sqe_tail, the kernel from
	 * the shared tail: the SQEs between the kernel's head and the tail
	 * are the owner's unsubmitted ones, the next io_uring_submit() takes
	 * them.
	 */
	ring->features = p.features;
	ring->sq.sqe_head = *ring->sq.ktail;
	ring->sq.sqe_tail = *ring->sq.ktail;
	return 0;
}
