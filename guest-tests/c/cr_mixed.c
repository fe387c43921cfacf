// SPDX-License-Identifier: GPL-2.0
/*
 * Description: one ring with a bit of everything, for the restore's
 * behaviour proof on each kind of ring (argv[1]: plain, sqpoll, defer):
 * 100 NOPs of history, 2 unreaped CQEs and (but on SQPOLL) 1 unsubmitted
 * SQE; a fixed buffer (slot 0, 8 KiB, slot 1 empty); a registered file
 * (slot 0: a data file, its fd closed) and a direct descriptor (slot 2,
 * opened by IORING_OP_OPENAT, an output file); personality 1 with uid and
 * gid 1000 (registered by a thread while the ring was still disabled: on
 * SINGLE_ISSUER only the submitter may register once it is enabled).
 * "expect buf" gives the buffer's address. After "go":
 *
 *   the pending CQEs, the unsubmitted SQE; READ_FIXED of the data file
 *   into the buffer under personality 1; WRITE_FIXED of it to the direct
 *   descriptor; a READ of that back; an OPENAT of a root-only file under
 *   personality 1 (-EACCES); an IOSQE_IO_DRAIN NOP.
 *
 *   cr_mixed KIND resume DIR ADDR
 *
 * restores such an image into a new process (while the original still
 * waits: the files are its) and runs the same continuation;
 * test_uringcr_restore.py::test_restore_behaviour compares the "result"
 * lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

#define BUF_LEN		8192
#define DATA		"/dev/shm/cr_mixed.data"
#define OUT		"/dev/shm/cr_mixed.out"
#define SECRET		"/dev/shm/cr_mixed.secret"

static struct io_uring ring;

static void *as_user(void *arg)
{
	int *id = arg;

	*id = -1;
	if (syscall(SYS_setgroups, 0, NULL) || syscall(SYS_setresgid, 1000, 1000, 1000) ||
	    syscall(SYS_setresuid, 1000, 1000, 1000))
		return NULL;
	*id = io_uring_register_personality(&ring);
	return NULL;
}

static int make_files(void)
{
	char data[BUF_LEN];
	int fd, i;

	for (i = 0; i < BUF_LEN; i++)
		data[i] = (char)(i * 13 + (i >> 8));
	fd = open(DATA, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, BUF_LEN) != BUF_LEN)
		return -1;
	close(fd);
	fd = open(SECRET, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	fd = open(OUT, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	return close(fd);
}

/* One prepared SQE submitted and waited for, its CQE printed as a result. */
static int one(const char *what)
{
	int res;

	if (ring_submit_wait(&ring, &res))
		res = -ETIME;
	result("%s res=%d", what, res);
	return res;
}

static enum t_exit finish(char *buf, unsigned int cqes, unsigned int sqes)
{
	struct io_uring_sqe *sqe;
	static char back[BUF_LEN];
	unsigned int i;
	__u64 ud;

	if (sqes && ring_submit(&ring, sqes))
		return t_fail("submitting the unsubmitted SQE");
	for (i = 0; i < cqes + sqes; i++)
		if (result_cqe(&ring, &ud) < 0)
			return t_fail("the pending completions");
	sqe = get_sqe(&ring);
	io_uring_prep_read_fixed(sqe, 0, buf, BUF_LEN, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->personality = 1;
	if (one("read_fixed") != BUF_LEN)
		return t_fail("READ_FIXED from the registered file");
	result("buffer crc32=%u", crc_of(buf, BUF_LEN));
	sqe = get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, 2, buf, BUF_LEN, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (one("write_fixed") != BUF_LEN)
		return t_fail("WRITE_FIXED to the direct descriptor");
	sqe = get_sqe(&ring);
	io_uring_prep_read(sqe, 2, back, BUF_LEN, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (one("read_back") != BUF_LEN || memcmp(back, buf, BUF_LEN))
		return t_fail("reading the direct descriptor back");
	sqe = get_sqe(&ring);
	io_uring_prep_openat(sqe, AT_FDCWD, SECRET, O_RDONLY, 0);
	sqe->personality = 1;
	if (one("open_secret_as_1000") != -EACCES)
		return t_fail("personality 1 is not uid 1000");
	sqe = get_sqe(&ring);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_IO_DRAIN;
	if (one("drain_nop"))
		return t_fail("a drain after the dump");
	result("sq_head=%u cq_tail=%u", *ring.sq.khead, *ring.cq.ktail);
	return t_pass();
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "plain";
	unsigned int flags = 0, i, sqes = 1;
	struct io_uring_params p;
	struct iovec iov[2] = {};
	pthread_t thr;
	int fds[3] = { -1, -1, -1 }, id = -1, res;
	char *buf;

	t_start("cr_mixed", argc, argv);
	if (!strcmp(kind, "sqpoll"))
		flags = IORING_SETUP_SQPOLL;
	else if (!strcmp(kind, "defer"))
		flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	else if (strcmp(kind, "plain"))
		return t_fail("kind is plain, sqpoll or defer");
	if (!strcmp(kind, "sqpoll"))
		sqes = 0;
	if (argc > 4 && !strcmp(argv[2], "resume")) {
		if (resume_ring(argv[3], 0, &ring))
			return t_fail("restoring the image");
		return finish((char *)strtoul(argv[4], NULL, 0), 2, sqes);
	}
	if (make_files())
		return t_fail("making the files");
	buf = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return t_fail("mmap");
	memset(buf, 0x5a, BUF_LEN);
	/* disabled until the personality is in: on SINGLE_ISSUER only the submitter registers */
	if (ring_init(&ring, &p, 16, 64, flags | IORING_SETUP_R_DISABLED, 1000))
		return t_fail("ring setup");
	if (pthread_create(&thr, NULL, as_user, &id) || pthread_join(thr, NULL) || id != 1)
		return t_fail("personality 1");
	if (syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0))
		return t_fail("enabling the ring");
	iov[0] = (struct iovec){ buf, BUF_LEN };
	fds[0] = open(DATA, O_RDWR);
	if (fds[0] < 0 || io_uring_register_buffers(&ring, iov, 2) ||
	    io_uring_register_files(&ring, fds, 3))
		return t_fail("registering");
	close(fds[0]);
	io_uring_prep_openat_direct(get_sqe(&ring), AT_FDCWD, OUT, O_RDWR, 0, 2);
	if (ring_submit_wait(&ring, &res) || res < 0)
		return t_fail("the direct descriptor");
	if (run_nops(&ring, 100, 0))
		return t_fail("history NOPs");
	for (i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe = get_sqe(&ring);

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 0xc0de + i);
	}
	if (io_uring_submit_and_wait(&ring, 2) < 0)
		return t_fail("posting CQEs");
	for (i = 0; i < sqes; i++) {
		struct io_uring_sqe *sqe = get_sqe(&ring);

		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 0x5e00);
	}
	/* published, not submitted */
	io_uring_smp_store_release(ring.sq.ktail, ring.sq.sqe_tail);
	ring.sq.sqe_head = ring.sq.sqe_tail;
	expect_ring(kind, &ring, &p);
	expect("buf", "addr=%lu", (unsigned long)buf);
	if (owner_wait())
		return t_fail("no go");
	return finish(buf, 2, sqes);
}
