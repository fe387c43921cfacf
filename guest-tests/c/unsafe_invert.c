// SPDX-License-Identifier: GPL-2.0
/*
 * Description: negative control, AB-BA: read(2) of ring A's buffer
 * iterator (seq_file->lock, then A's ->uring_lock), then ring B reads A's
 * iterator inline (B's ->uring_lock, then seq_file->lock): the AB-BA of the
 * cover letter's drawing. Only meaningful on the negative-control kernel
 * (kernel-patches/negative/): lockdep reports "possible circular locking
 * dependency"; nothing holds A's lock, so the read completes. On the
 * series' kernel it ends in -EDEADLK or success.
 * negative/test_invert.py starts it and waits for the report.
 */
#include <stdio.h>

#include "guest.h"

static enum t_exit test_unsafe_invert(void)
{
	static char page[2][PAGE_SZ] __attribute__((aligned(PAGE_SZ)));
	static char buf[TEXT_MAX];
	struct io_uring ring[2];
	struct bpf_link *link[2];
	long len;
	int fd, res;

	if (one_page_ring(&ring[0], page[0], &link[0]) ||
	    one_page_ring(&ring[1], page[1], &link[1]))
		return t_fail("ring setup");
	fd = iter_open(link[0], true);
	if (fd < 0)
		return t_fail("iterator fd");
	len = read_walk(fd, buf, sizeof(buf), 0, 0, NULL);
	t_diag("read(2) of ring a's iterator: %ld", len);
	t_diag("ring b reads ring a's iterator inline");
	res = ring_read(&ring[1], fd, buf, sizeof(buf), 0);
	printf("unsafe order=invert res=%d\n", res);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("unsafe_invert", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	return test_unsafe_invert();
}
