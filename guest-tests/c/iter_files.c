// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the io_uring_reg_file iterator over a sparse 12-slot file table:
 * regular files (one O_APPEND, one at a position), both ends of a pipe, a
 * unix and a UDP socket, /dev/null, one fd in two slots, and a direct
 * descriptor opened by IORING_OP_OPENAT into a slot (no fd in the task,
 * read from once). Prints fstat/fcntl/lseek of everything registered (of an
 * ordinary open() for the direct one), every fd of the task, the ring's
 * fdinfo, and the walks: whole, in 7-byte reads, and of the empty buffer
 * table. test_uring_iter.py::test_file_iterator checks every field.
 *
 * The files live on a tmpfs of our own in a private mount namespace: the
 * guest's /tmp is overlayfs, whose stat() reports the device of the layer
 * below rather than i_sb->s_dev, so fstat() would not be a view of what
 * the kernel keeps.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "guest.h"

#define NR_SLOTS	12
#define DIRECT_SLOT	9
#define DIRECT_READ	5

static char tmpdir[] = "/tmp/iter_files.XXXXXX";

static void print_file(int slot, const char *kind, int fd, const char *path)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	off_t pos = lseek(fd, 0, SEEK_CUR);

	if (fstat(fd, &st)) {
		printf("regfile slot=%d kind=%s fstat_error=%d\n", slot, kind, errno);
		return;
	}
	/* pipes and sockets cannot seek: their f_pos stays 0 */
	if (pos < 0)
		pos = 0;
	printf("regfile slot=%d kind=%s fd=%d ino=%lu dev_major=%u dev_minor=%u rdev_major=%u rdev_minor=%u mode=%o f_flags=%x pos=%lld",
	       slot, kind, fd, (unsigned long)st.st_ino, major(st.st_dev),
	       minor(st.st_dev), major(st.st_rdev), minor(st.st_rdev),
	       st.st_mode, fl, (long long)pos);
	printf(" name=%s\n", path ? strrchr(path, '/') + 1 : "");
}

/* What an ordinary open of the direct descriptor's file with its flags gives */
static int print_direct(const char *path)
{
	struct stat st;
	int ref = open(path, O_RDONLY);

	if (ref < 0 || fstat(ref, &st))
		return -1;
	printf("regfile slot=%d kind=direct fd=-1 ino=%lu dev_major=%u dev_minor=%u rdev_major=%u rdev_minor=%u mode=%o f_flags=%x pos=%d name=%s\n",
	       DIRECT_SLOT, (unsigned long)st.st_ino, major(st.st_dev),
	       minor(st.st_dev), major(st.st_rdev), minor(st.st_rdev),
	       st.st_mode, fcntl(ref, F_GETFL), DIRECT_READ,
	       strrchr(path, '/') + 1);
	close(ref);
	return 0;
}

static int make_file(const char *name, char *path, size_t size, int flags,
		     off_t pos)
{
	static const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	int fd, i;

	snprintf(path, size, "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (i = 0; i < 10; i++)
		if (write(fd, text, sizeof(text) - 1) != sizeof(text) - 1)
			return -1;
	close(fd);
	fd = open(path, flags | O_CLOEXEC);
	if (fd >= 0 && pos && lseek(fd, pos, SEEK_SET) != pos)
		return -1;
	return fd;
}

/* Inode numbers of every fd of this task, to show the direct one has none. */
static void print_task_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	struct stat st;

	if (!d) {
		printf("taskfd error=%d\n", errno);
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (!fstat(fd, &st))
			printf("taskfd fd=%d ino=%lu dev_major=%u dev_minor=%u\n",
			       fd, (unsigned long)st.st_ino, major(st.st_dev),
			       minor(st.st_dev));
	}
	closedir(d);
}

/* Opens @path into DIRECT_SLOT with IORING_OP_OPENAT and reads DIRECT_READ bytes. */
static enum t_exit open_direct(struct io_uring *ring, const char *path)
{
	struct io_uring_sqe *sqe;
	char rbuf[64];
	int ret, res;

	step("openat direct");
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_openat_direct(sqe, AT_FDCWD, path, O_RDONLY, 0, DIRECT_SLOT);
	ret = ring_submit_wait(ring, &res);
	if (ret || res) {
		t_diag("openat direct: ret %d res %d", ret, res);
		return t_fail("openat direct");
	}
	step("read direct");
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_read(sqe, DIRECT_SLOT, rbuf, DIRECT_READ, -1);
	sqe->flags |= IOSQE_FIXED_FILE;
	ret = ring_submit_wait(ring, &res);
	if (ret || res != DIRECT_READ) {
		t_diag("read direct: ret %d res %d", ret, res);
		return t_fail("read from the direct descriptor");
	}
	return T_EXIT_PASS;
}

static enum t_exit test_files(void)
{
	char path_a[256], path_b[256], path_c[256];
	int fds[NR_SLOTS], pfd[2], sk[2], fd_a, fd_b, fd_c, fd_udp, fd_null;
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct bpf_link *buf_link, *file_link;
	char *decoy_mem;
	enum t_exit res;
	int i, ret;

	if (!mkdtemp(tmpdir))
		return t_fail("mkdtemp");
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("iter_files", tmpdir, "tmpfs", 0, "size=1m,mode=0700")) {
		t_diag("tmpfs on %s: %s", tmpdir, strerror(errno));
		return t_fail("cannot mount a tmpfs for the test files (needs root)");
	}
	decoy_mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (decoy_mem == MAP_FAILED)
		return t_fail("mmap");
	memset(decoy_mem, 0xa5, 4 * PAGE_SZ);

	fd_a = make_file("file_a", path_a, sizeof(path_a), O_RDWR, 123);
	fd_b = make_file("file_b", path_b, sizeof(path_b), O_WRONLY | O_APPEND, 7);
	fd_c = make_file("file_c", path_c, sizeof(path_c), O_RDONLY, 0);
	fd_null = open("/dev/null", O_RDWR | O_CLOEXEC);
	fd_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd_a < 0 || fd_b < 0 || fd_c < 0 || fd_null < 0 || fd_udp < 0 ||
	    pipe2(pfd, O_NONBLOCK | O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk))
		return t_fail("open files");
	close(fd_c);	/* file_c is only ever opened as a direct descriptor */

	for (i = 0; i < NR_SLOTS; i++)
		fds[i] = -1;
	fds[0] = fd_a;
	fds[2] = fd_b;
	fds[3] = pfd[0];
	fds[4] = pfd[1];
	fds[6] = sk[0];
	fds[7] = fd_udp;
	fds[8] = fd_a;		/* the same struct file in two slots */
	fds[10] = fd_null;

	print_file(0, "regular", fd_a, path_a);
	print_file(2, "regular", fd_b, path_b);
	print_file(3, "pipe", pfd[0], NULL);
	print_file(4, "pipe", pfd[1], NULL);
	print_file(6, "unix", sk[0], NULL);
	print_file(7, "udp", fd_udp, NULL);
	print_file(8, "regular", fd_a, path_a);
	print_file(10, "chardev", fd_null, "/dev/null");

	if (ring_init(&ring, &p, 16, 64, 0, 0) || decoy_ring(&decoy, decoy_mem))
		return t_fail("ring setup");
	print_ring("main", &ring, &p);
	ret = io_uring_register_files(&ring, fds, NR_SLOTS);
	if (ret) {
		t_diag("io_uring_register_files: %s", strerror(-ret));
		return t_fail("register files");
	}
	/* the table holds the only references from now on */
	close(fd_a);
	close(fd_b);
	close(pfd[0]);
	close(pfd[1]);
	close(sk[0]);
	close(sk[1]);
	close(fd_udp);
	close(fd_null);

	res = open_direct(&ring, path_c);
	if (res != T_EXIT_PASS)
		return res;
	if (print_direct(path_c))
		return t_fail("reference open");
	printf("table kind=file slots=%d\n", NR_SLOTS);
	for (i = 0; i < NR_SLOTS; i++)
		if (fds[i] < 0 && i != DIRECT_SLOT)
			printf("regfile slot=%d empty\n", i);
	print_task_fds();
	print_fdinfo(ring.ring_fd);

	buf_link = iter_attach(IT_BUF, ring.ring_fd);
	file_link = iter_attach(IT_FILE, ring.ring_fd);
	if (!buf_link || !file_link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk file whole");
	if (iter_dump(file_link, "file", ITER_WHOLE))
		return t_fail("walk file");
	iter_print_counters("file");
	step("walk file 7-byte reads");
	if (iter_dump(file_link, "file-chunked", 7))
		return t_fail("walk file-chunked");
	iter_print_counters("file-chunked");
	/* an empty buffer table: only the final call */
	step("walk buf");
	if (iter_dump(buf_link, "buf", ITER_WHOLE))
		return t_fail("walk buf");
	iter_print_counters("buf");

	bpf_link__destroy(buf_link);
	bpf_link__destroy(file_link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	umount2(tmpdir, MNT_DETACH);
	rmdir(tmpdir);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_files", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_files();
	iter_unload();
	return ret;
}
