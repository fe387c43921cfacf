// SPDX-License-Identifier: GPL-2.0
/*
 * Description: pins a buffer iterator link of a ring at argv[1] (on bpffs),
 * reads the pin once while the ring is there, and exits: the pinned link
 * does not keep the ring, which goes with the process. Prints "pinned
 * path=.. ring_ino=.. buf=.. len=.. walk_lines=..";
 * test_uring_iter.py::test_pinned_link_outlives_its_ring reads the pin
 * with cat(1) (an empty walk now), lists it with the distribution's
 * bpftool and removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "guest.h"

/* lines in a read of the pinned iterator, or -errno */
static int pin_lines(const char *path)
{
	static char text[TEXT_MAX];
	int fd = open(path, O_RDONLY), n = 0;
	long len;

	if (fd < 0)
		return -errno;
	len = read_walk(fd, text, sizeof(text), 0, 100000, NULL);
	close(fd);
	if (len < 0)
		return len;
	for (long i = 0; i < len; i++)
		n += text[i] == '\n';
	return n;
}

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
	printf("pinned path=%s ring_ino=%lu buf=0x%lx len=%zu walk_lines=%d\n", path,
	       (unsigned long)st.st_ino, (unsigned long)buf, sizeof(buf), pin_lines(path));
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
