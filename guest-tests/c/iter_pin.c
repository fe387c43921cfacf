// SPDX-License-Identifier: GPL-2.0
/*
 * Description: pins a buffer iterator link of a ring at argv[1] (on bpffs)
 * and exits: the pinned link is then the only thing keeping the ring
 * alive. Prints "pinned path=.. ring_ino=.. buf=.. len=..";
 * test_uring_iter.py::test_pinned_link_keeps_the_ring_and_bpftool_lists_it
 * reads the pin with cat(1), lists it with the distribution's bpftool and
 * removes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "guest.h"

static enum t_exit test_pin(const char *path)
{
	static char buf[PAGE_SZ] __attribute__((aligned(4096)));
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct io_uring_params p;
	struct io_uring ring;
	struct bpf_link *link;
	struct stat st;
	int ret;

	if (ring_init(&ring, &p, 4, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	if (fstat(ring.ring_fd, &st))
		return t_fail("fstat ring");
	link = iter_attach(IT_BUF, ring.ring_fd);
	if (!link)
		return t_fail("attach");
	if (bpf_link__pin(link, path)) {
		t_diag("bpf_link__pin %s: %s", path, strerror(errno));
		return t_fail("pin");
	}
	printf("pinned path=%s ring_ino=%lu buf=0x%lx len=%zu\n", path,
	       (unsigned long)st.st_ino, (unsigned long)buf, sizeof(buf));
	bpf_link__destroy(link);
	io_uring_queue_exit(&ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_pin", argc, argv);
	if (argc < 2)
		return t_fail("usage: iter_pin PATH");
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_pin(argv[1]);
	iter_unload();
	return ret;
}
