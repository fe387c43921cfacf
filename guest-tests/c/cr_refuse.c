// SPDX-License-Identifier: GPL-2.0
/*
 * Description: one ring with one thing uringcr's image cannot carry yet,
 * named by argv[1] (personalities, restrictions and an eventfd that is an
 * fd of the process are carried: cr_pers.c, cr_state.c); "expect refusal name=<name>" gives the refusal uringcr
 * must report for it (uringcr check lists it, uringcr dump fails on it and
 * writes nothing). After "go" the ring still works.
 * test_uringcr_safety.py::test_refusal runs every kind.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"

static struct io_uring ring, other, third;
static char *mem;

static int register_one(int fd)
{
	return io_uring_register_files(&ring, &fd, 1);
}

static int one_buffer(struct io_uring *r)
{
	struct iovec iov = { mem, PAGE_SZ };

	return io_uring_register_buffers(r, &iov, 1);
}

/*
 * Hands ring fd @fd to a child process that holds it until this process
 * exits, and closes it here: the ring lives on outside this process, out
 * of any image of it.
 */
static int to_child(int fd)
{
	int ready[2];
	pid_t child;
	char c;

	if (pipe(ready))
		return -1;
	child = fork();
	if (child < 0)
		return -1;
	if (!child) {
		int null = open("/dev/null", O_RDWR);

		/* the test reads the owner's output to its end: not ours */
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 3; i < 1024; i++)
			if (i != fd && i != ready[1])
				close(i);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		return -1;
	close(ready[0]);
	return close(fd);
}

#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP	(1U << 14)
#endif
/*
 * A ring whose SQ/CQ rings and SQEs are this process's own pages
 * (IORING_SETUP_NO_MMAP; liburing 2.3 cannot set one up): raw setup, and
 * the fd goes into ring.ring_fd for the expect lines.
 */
static int no_mmap_ring(void)
{
	struct io_uring_params p = { .flags = IORING_SETUP_NO_MMAP };
	char *rings = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	int fd;

	if (rings == MAP_FAILED)
		return -1;
	/* user_addr: resv2 in liburing 2.3's copy of the UAPI */
	p.cq_off.resv2 = (unsigned long)rings;
	p.sq_off.resv2 = (unsigned long)rings + PAGE_SZ;
	fd = syscall(__NR_io_uring_setup, 8, &p);
	if (fd < 0)
		return -1;
	ring.ring_fd = fd;
	return 0;
}

/* A file whose path is longer than the 255 bytes an image holds. */
static int long_path_file(void)
{
	char path[512], name[101];
	int fd;

	memset(name, 'x', 100);
	name[100] = '\0';
	snprintf(path, sizeof(path), "/dev/shm/cr_refuse.%d", getpid());
	for (int i = 0; i < 3; i++) {
		if (mkdir(path, 0700))
			return -1;
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", name);
	}
	fd = open(path, O_RDWR | O_CREAT, 0600);
	return fd < 0 ? -1 : register_one(fd);
}

/*
 * Seven rings attached to the SQPOLL thread of ring, whose fd is then
 * moved above theirs: only the thread's owner first restores them, and
 * the restore's search of orders stops at UCR_ORDER_MAX (7) rings.
 */
static int attach_many(void)
{
	static struct io_uring attached[7];
	struct io_uring_params p;
	int i;

	if (ring_init(&ring, &p, 8, 0, IORING_SETUP_SQPOLL, 0))
		return -1;
	for (i = 0; i < 7; i++)
		if (ring_attach(&attached[i], &ring, IORING_SETUP_SQPOLL, 0))
			return -1;
	return ring_fd_above(&ring, attached[6].ring_fd);
}

static int setup(const char *kind)
{
	struct io_uring_params p;
	int fds[2], fd, ret;
	char path[64];

	if (!strcmp(kind, "nommap"))
		return no_mmap_ring();
	if (!strcmp(kind, "attach-wq")) {
		/* other runs on ring's SQPOLL thread, and a child holds other */
		if (ring_init(&ring, &p, 8, 0, IORING_SETUP_SQPOLL, 0))
			return -1;
		if (ring_attach(&other, &ring, IORING_SETUP_SQPOLL, 0))
			return -1;
		return to_child(other.ring_fd);
	}
	if (!strcmp(kind, "attach-many"))
		return attach_many();
	if (ring_init(&ring, &p, 8, 8, 0, 0))
		return -1;
	if (!strcmp(kind, "eventfd")) {
		/* registered, then closed: the process has no fd for it any more */
		fd = eventfd(0, 0);
		if (fd < 0 || io_uring_register_eventfd(&ring, fd))
			return -1;
		return close(fd);
	}
	if (!strcmp(kind, "pbuf")) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_provide_buffers(sqe, mem, 512, 4, 1, 0);
		return ring_submit_wait(&ring, &ret) ? -1 : ret;
	}
	if (!strcmp(kind, "socket")) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds))
			return -1;
		return register_one(fds[0]);
	}
	if (!strcmp(kind, "pipe")) {
		if (pipe(fds))
			return -1;
		return register_one(fds[0]);
	}
	if (!strcmp(kind, "longpath"))
		return long_path_file();
	if (!strcmp(kind, "regtwice")) {
		struct io_uring_rsrc_update up = { .offset = 5, .data = ring.ring_fd };

		if (io_uring_register_ring_fd(&ring) != 1)
			return -1;
		/* the same ring again, at index 5 */
		return syscall(__NR_io_uring_register, ring.ring_fd,
			       IORING_REGISTER_RING_FDS, &up, 1) == 1 ? 0 : -1;
	}
	if (!strcmp(kind, "pers64")) {
		/* ids 1..70: beyond the first xarray node */
		for (int i = 0; i < 70; i++)
			if (io_uring_register_personality(&ring) < 0)
				return -1;
		return 0;
	}
	if (!strcmp(kind, "unlinked")) {
		snprintf(path, sizeof(path), "/tmp/cr_refuse.%d", getpid());
		fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || unlink(path))
			return -1;
		return register_one(fd);
	}
	if (!strcmp(kind, "unmapped")) {
		ret = one_buffer(&ring);
		return ret ? ret : munmap(mem, PAGE_SZ);
	}
	if (!strcmp(kind, "shared"))
		return one_buffer(&ring) || ring_init(&other, &p, 8, 0, 0, 0) ||
		       ring_clone_buffers(&other, &ring) ? -1 : to_child(other.ring_fd);
	if (!strcmp(kind, "shared-three")) {
		/*
		 * ring {x, y, z}, cloned by other and by third; then ring takes
		 * r0 for slot 0, other o1 for slot 1, third t2 for slot 2. Each
		 * two rings share one buffer the third lacks: whichever ring
		 * comes last would have to clone from both others (cr_order.c's
		 * clone kind shares with two rings in a way one order rebuilds).
		 */
		struct iovec three[3] = {
			{ mem, PAGE_SZ }, { mem + PAGE_SZ, PAGE_SZ }, { mem + 2 * PAGE_SZ, PAGE_SZ },
		};
		struct iovec r0 = { mem + 3 * PAGE_SZ, PAGE_SZ }, o1 = r0, t2 = r0;
		__u64 tag = 0;

		return io_uring_register_buffers(&ring, three, 3) ||
		       ring_init(&other, &p, 8, 0, 0, 0) || ring_init(&third, &p, 8, 0, 0, 0) ||
		       ring_clone_buffers(&other, &ring) || ring_clone_buffers(&third, &ring) ||
		       io_uring_register_buffers_update_tag(&ring, 0, &r0, &tag, 1) != 1 ||
		       io_uring_register_buffers_update_tag(&other, 1, &o1, &tag, 1) != 1 ||
		       io_uring_register_buffers_update_tag(&third, 2, &t2, &tag, 1) != 1 ? -1 : 0;
	}
	if (!strcmp(kind, "pages")) {
		/*
		 * ring {x1, y0}, other {x0, y1}: x0 and y0 went and x1 and y1
		 * were mapped at their addresses. Whichever ring comes first
		 * maps its new page where the other ring's old one would have
		 * to be mapped after it (cr_order.c's pages kind is one way
		 * round only, and restores).
		 */
		struct iovec x = { mem, PAGE_SZ }, y = { mem + PAGE_SZ, PAGE_SZ };
		__u64 tag = 0;
		int i;

		if (ring_init(&other, &p, 8, 0, 0, 0) ||
		    io_uring_register_buffers_sparse(&ring, 2) ||
		    io_uring_register_buffers_sparse(&other, 2) ||
		    io_uring_register_buffers_update_tag(&other, 0, &x, &tag, 1) != 1 ||
		    io_uring_register_buffers_update_tag(&ring, 1, &y, &tag, 1) != 1)
			return -1;
		for (i = 0; i < 2; i++)
			if (munmap(mem + i * PAGE_SZ, PAGE_SZ) ||
			    mmap(mem + i * PAGE_SZ, PAGE_SZ, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != mem + i * PAGE_SZ)
				return -1;
		memset(mem, 0x5a, 2 * PAGE_SZ);
		return io_uring_register_buffers_update_tag(&ring, 0, &x, &tag, 1) != 1 ||
		       io_uring_register_buffers_update_tag(&other, 1, &y, &tag, 1) != 1 ? -1 : 0;
	}
	if (!strcmp(kind, "skip")) {
		/* one NOP with IOSQE_CQE_SKIP_SUCCESS: drain_disabled for good */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_nop(sqe);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		return io_uring_submit(&ring) == 1 ? 0 : -1;
	}
	if (!strcmp(kind, "overflow")) {
		/* a CQ of 8 and 12 NOPs not reaped: 4 wait on the overflow list */
		for (int i = 0; i < 12; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (!sqe) {
				io_uring_submit(&ring);
				sqe = io_uring_get_sqe(&ring);
			}
			io_uring_prep_nop(sqe);
		}
		return io_uring_submit(&ring) < 0 ? -1 : 0;
	}
	return -2;
}

static const char *refusal(const char *kind)
{
	static const char *const names[][2] = {
		{ "attach-wq", "attach-wq" }, { "attach-many", "attach-wq" },
		{ "eventfd", "eventfd" },
		{ "pbuf", "provided-buffers" },
		{ "socket", "file-unopenable" }, { "pipe", "file-unopenable" },
		{ "unlinked", "file-unlinked" }, { "unmapped", "buffer-unmapped" },
		{ "shared", "buffer-shared" }, { "shared-three", "buffer-shared" },
		{ "pages", "buffer-pages" },
		{ "overflow", "cq-overflow" },
		{ "skip", "cqe-skip" },
		{ "nommap", "no-mmap" }, { "longpath", "file-path" },
		{ "regtwice", "registered-ring-twice" }, { "pers64", "personalities" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(kind, names[i][0]))
			return names[i][1];
	return NULL;
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "";
	const char *name = refusal(kind);
	int ret;

	t_start("cr_refuse", argc, argv);
	if (!name)
		return t_fail("unknown kind");
	mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return t_fail("mmap");
	memset(mem, 0x3c, 4 * PAGE_SZ);
	ret = setup(kind);
	if (ret) {
		t_diag("setting up %s: %d", kind, ret);
		return t_fail("setup");
	}
	expect("ring", "name=%s fd=%d", kind, ring.ring_fd);
	expect("refusal", "name=%s fd=%d", name, ring.ring_fd);
	if (owner_wait())
		return t_fail("no go");
	if (!strcmp(kind, "overflow") || !strcmp(kind, "nommap"))
		return t_pass();
	return run_nops(&ring, 2, 1) ? t_fail("NOPs after the dump") : t_pass();
}
