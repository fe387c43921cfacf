// SPDX-License-Identifier: GPL-2.0
/*
 * Description: registered files for uringcr to dump: a sparse table of 16
 * slots holding a regular file at a position with O_APPEND, /dev/null
 * write-only, a directory, a read-only file, and two direct descriptors
 * opened by IORING_OP_OPENAT into slots 7 and 12 that never had an fd. The
 * task's own fds are closed, so the table holds the only references. The
 * file allocation range is [8, 14). "expect file" lines give each slot's
 * path, device, inode, position and flags (F_GETFL before the close).
 * test_uringcr.py::test_dump_files checks the image against it.
 *
 *   cr_files resume DIR
 *
 * restores such an image into a new process (while the original still
 * waits, so the files exist); both run the same continuation.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

#define NR_SLOTS	16

static char dir[64];

static int make_file(const char *name, char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "0123456789abcdef", 16) != 16)
		return -1;
	close(fd);
	return 0;
}

static void expect_file(int slot, const char *path, int fd, int flags)
{
	struct stat st;

	if (stat(path, &st))
		memset(&st, 0, sizeof(st));
	expect("file", "slot=%d path=%s dev_major=%u dev_minor=%u ino=%lu pos=%lld flags=%d",
	       slot, path, major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino,
	       fd >= 0 ? (long long)lseek(fd, 0, SEEK_CUR) : 0LL,
	       fd >= 0 ? fcntl(fd, F_GETFL) : flags);
}

static int open_direct(struct io_uring *ring, const char *path, int flags, int slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int res;

	io_uring_prep_openat_direct(sqe, AT_FDCWD, path, flags, 0, slot);
	if (ring_submit_wait(ring, &res) || res < 0) {
		t_diag("openat direct %s: %d", path, res);
		return -1;
	}
	return 0;
}

/* One I/O on a fixed file, printed as a result line: what it read, its res. */
static int fixed_io(struct io_uring *ring, int op, int slot, __u64 off, unsigned int len)
{
	struct io_uring_sqe *sqe = get_sqe(ring);
	char buf[16] = "";
	int res;

	if (!sqe)
		return -1;
	io_uring_prep_rw(op, sqe, slot, buf, len, off);
	if (op == IORING_OP_WRITE)
		memcpy(buf, "hello", 5);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (ring_submit_wait(ring, &res))
		return -1;
	result("slot=%d op=%d off=%lld res=%d data=%.*s", slot, op, (long long)(__s64)off, res,
	       op == IORING_OP_READ && res > 0 ? res : 0, buf);
	return res;
}

/*
 * The continuation, the same in the resumed original and in the restored
 * copy: reads at each file's own position (-1) and at offsets, through
 * registered files and direct descriptors, a write, a read of the
 * directory (-EISDIR), and an open into the file allocation range. Nothing
 * changes the files, so the two processes can run it one after the other.
 */
static enum t_exit finish(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;
	int res;

	if (fixed_io(ring, IORING_OP_READ, 0, -1, 4) != 4 ||
	    fixed_io(ring, IORING_OP_READ, 0, -1, 4) != 4 ||
	    fixed_io(ring, IORING_OP_READ, 5, -1, 4) != 4 ||
	    fixed_io(ring, IORING_OP_WRITE, 2, 0, 5) != 5 ||
	    fixed_io(ring, IORING_OP_READ, 3, 0, 4) != -EISDIR ||
	    fixed_io(ring, IORING_OP_READ, 7, 0, 4) != 4 ||
	    fixed_io(ring, IORING_OP_READ, 12, 4, 4) != 4)
		return t_fail("fixed-file I/O after the dump");
	/* a new direct descriptor lands in the allocation range [8, 14) */
	sqe = get_sqe(ring);
	if (!sqe)
		return t_fail("no SQE");
	io_uring_prep_openat(sqe, AT_FDCWD, "/dev/null", O_RDONLY, 0);
	/* set by hand: liburing 2.3's _direct helper turns ALLOC into a plain fd */
	sqe->file_index = IORING_FILE_INDEX_ALLOC;
	if (ring_submit_wait(ring, &res))
		return t_fail("openat into the allocation range");
	result("alloc slot=%d", res);
	if (res < 8 || res >= 14)
		return t_fail("the file allocation range after the dump");
	return T_EXIT_PASS;	/* the caller says pass */
}

int main(int argc, char *argv[])
{
	char reg[128], ro[128], d7[128], d12[128];
	int fds[NR_SLOTS], i, ret;
	struct io_uring_params p;
	struct io_uring ring;

	t_start("cr_files", argc, argv);
	if (argc > 2 && !strcmp(argv[1], "resume")) {
		/* cr_files resume DIR: the files must still be there */
		if (resume_ring(argv[2], 0, &ring))
			return t_fail("restoring the image");
		return finish(&ring) == T_EXIT_PASS ? t_pass() : T_EXIT_FAIL;
	}
	/*
	 * On tmpfs: under overlayfs (the guest's /tmp) a file's inode is the
	 * real one below, which stat() does not report.
	 */
	snprintf(dir, sizeof(dir), "/dev/shm/cr_files.%d", getpid());
	if (mkdir(dir, 0700) || make_file("reg", reg, sizeof(reg)) ||
	    make_file("ro", ro, sizeof(ro)) || make_file("d7", d7, sizeof(d7)) ||
	    make_file("d12", d12, sizeof(d12)))
		return t_fail("making the files");
	for (i = 0; i < NR_SLOTS; i++)
		fds[i] = -1;
	fds[0] = open(reg, O_RDWR | O_APPEND);
	fds[2] = open("/dev/null", O_WRONLY);
	fds[3] = open(dir, O_RDONLY | O_DIRECTORY);
	fds[5] = open(ro, O_RDONLY);
	if (fds[0] < 0 || fds[2] < 0 || fds[3] < 0 || fds[5] < 0)
		return t_fail("open");
	lseek(fds[0], 7, SEEK_SET);
	lseek(fds[5], 11, SEEK_SET);

	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_files(&ring, fds, NR_SLOTS);
	if (ret) {
		t_diag("io_uring_register_files: %s", strerror(-ret));
		return t_fail("register files");
	}
	if (open_direct(&ring, d7, O_RDWR, 7) || open_direct(&ring, d12, O_RDONLY, 12))
		return t_fail("direct descriptors");
	ret = io_uring_register_file_alloc_range(&ring, 8, 6);
	if (ret) {
		t_diag("io_uring_register_file_alloc_range: %s", strerror(-ret));
		return t_fail("file alloc range");
	}
	expect_ring("files", &ring, &p);
	expect("files", "slots=%d alloc_start=8 alloc_end=14", NR_SLOTS);
	expect_file(0, reg, fds[0], 0);
	expect_file(2, "/dev/null", fds[2], 0);
	expect_file(3, dir, fds[3], 0);
	expect_file(5, ro, fds[5], 0);
	expect_file(7, d7, -1, O_RDWR);
	expect_file(12, d12, -1, O_RDONLY);
	for (i = 0; i < NR_SLOTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (owner_wait())
		return t_fail("no go");
	ret = finish(&ring);
	if (ret != T_EXIT_PASS)
		return ret;
	unlink(reg);
	unlink(ro);
	unlink(d7);
	unlink(d12);
	rmdir(dir);
	return t_pass();
}
