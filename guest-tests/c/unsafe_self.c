// SPDX-License-Identifier: GPL-2.0
/*
 * Description: negative control, self-read: a ring reads its own buffer
 * iterator inline (O_NONBLOCK): ->uring_lock, seq_file->lock, ->uring_lock
 * again. Only meaningful on the negative-control kernel
 * (kernel-patches/negative/, ->start() sleeping on ->uring_lock): lockdep
 * reports "possible recursive locking", then the task deadlocks for real
 * and this never returns. On the series' kernel the read ends in -EDEADLK.
 * Nothing reads an iterator before: a read(2) would record seq_file->lock
 * -> ->uring_lock and turn the recursive report into a circular one.
 * negative/test_self_read.py starts it and waits for the report.
 */
#include <stdio.h>

#include "guest.h"

static enum t_exit test_unsafe_self(void)
{
	static char page[PAGE_SZ] __attribute__((aligned(PAGE_SZ)));
	static char buf[TEXT_MAX];
	struct io_uring ring;
	struct bpf_link *link;
	int fd, res;

	if (one_page_ring(&ring, page, &link))
		return t_fail("ring setup");
	fd = iter_open(link, true);
	if (fd < 0)
		return t_fail("iterator fd");
	t_diag("ring a reads its own iterator inline");
	res = ring_read(&ring, fd, buf, sizeof(buf), 0);
	printf("unsafe order=self res=%d\n", res);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("unsafe_self", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	return test_unsafe_self();
}
