// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a polled ring (IORING_SETUP_IOPOLL) on a block device
 * that completes by polling (DEV: test_uringcr_restore.py makes a
 * memory-backed null_blk device with a poll queue). Its registered file
 * is DEV opened O_DIRECT, its registered buffer 16 KiB of anonymous
 * memory. Before the dump the ring writes pattern 1 at offset 0 and reads
 * it back, both polled through the fixed file and buffer, and leaves one
 * NOP's CQE unreaped.
 *
 *   cr_iopoll KIND DEV
 *
 * KIND: plain (the syscalls poll), sqpoll (IORING_SETUP_SQPOLL too: the SQ
 * thread polls), inflight (plain, and a polled read submitted last that
 * nothing polls while the owner waits for "go": a dump must refuse it).
 *
 * The continuation after "go": reap the pending CQE (inflight: the read's,
 * which the wait polls to its end), write pattern 2 at 16 KiB, read offset
 * 0 and then 16 KiB back into the buffer, printing each read's CRC32: the
 * device keeps what the original wrote, so the resumed original and the
 * restored copy print the same lines.
 *
 *   cr_iopoll KIND resume DIR ADDR
 *
 * restores the ring from image DIR (the buffer at ADDR) into a new process
 * and runs the same continuation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixed_io.h"
#include "guest.h"
#include "owner.h"
#include "resume.h"
#include "ring.h"

#define BUF_LEN		(16 * 1024)
#define PENDING_UD	0x77
#define INFLIGHT_UD	0x99

/* One polled READ_FIXED or WRITE_FIXED of the whole buffer at @off: its res. */
static int polled(struct io_uring *ring, bool write, char *buf, off_t off)
{
	struct io_uring_sqe *sqe = get_sqe(ring);
	int res = -EIO;

	if (!sqe)
		return -EBUSY;
	if (write)
		io_uring_prep_write_fixed(sqe, 0, buf, BUF_LEN, off, 0);
	else
		io_uring_prep_read_fixed(sqe, 0, buf, BUF_LEN, off, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = off + write;
	if (ring_submit_wait(ring, &res))
		return -ETIME;
	return res;
}

static enum t_exit finish(struct io_uring *ring, char *buf, bool inflight)
{
	__u64 ud = 0;
	int res;

	if (result_cqe(ring, &ud) < 0 || ud != (inflight ? INFLIGHT_UD : PENDING_UD))
		return t_fail("the pending CQE");
	fill_pattern(buf, BUF_LEN, 2);
	res = polled(ring, true, buf, BUF_LEN);
	result("write off=16384 res=%d", res);
	if (res != BUF_LEN)
		return t_fail("the polled write");
	memset(buf, 0, BUF_LEN);
	res = polled(ring, false, buf, 0);
	result("read off=0 res=%d crc=%u", res, crc_of(buf, BUF_LEN));
	if (res != BUF_LEN)
		return t_fail("the polled read at 0");
	res = polled(ring, false, buf, BUF_LEN);
	result("read off=16384 res=%d crc=%u", res, crc_of(buf, BUF_LEN));
	if (res != BUF_LEN)
		return t_fail("the polled read at 16384");
	result("setup flags=0x%x", ring->flags);
	return t_pass();
}

/* The last SQE before the dump: the read whose completion nothing polls. */
static int submit_unpolled(struct io_uring *ring, char *buf)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	if (!sqe)
		return -1;
	io_uring_prep_read_fixed(sqe, 0, buf, BUF_LEN, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = INFLIGHT_UD;
	/*
	 * Not io_uring_submit(): on a polled ring it enters with
	 * IORING_ENTER_GETEVENTS, which polls once, and null_blk completes
	 * the read in that poll. Published and submitted by hand, unpolled.
	 */
	ring->sq.sqe_head = ring->sq.sqe_tail;
	io_uring_smp_store_release(ring->sq.ktail, ring->sq.sqe_tail);
	return io_uring_enter(ring->ring_fd, 1, 0, 0, NULL) == 1 ? 0 : -1;
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "";
	bool sqpoll = !strcmp(kind, "sqpoll"), inflight = !strcmp(kind, "inflight");
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct iovec iov;
	char *buf;
	int fd, res;

	t_start("cr_iopoll", argc, argv);
	if (!sqpoll && !inflight && strcmp(kind, "plain"))
		return t_fail("usage: cr_iopoll plain|sqpoll|inflight DEV");
	if (argc > 4 && !strcmp(argv[2], "resume")) {
		buf = (char *)strtoul(argv[4], NULL, 0);
		if (resume_ring(argv[3], 0, &ring))
			return t_fail("restoring the image");
		return finish(&ring, buf, false);
	}
	if (argc < 3)
		return t_fail("usage: cr_iopoll KIND DEV");
	fd = open(argv[2], O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return t_fail("opening the device O_DIRECT");
	buf = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED ||
	    ring_init(&ring, &p, 8, 0, IORING_SETUP_IOPOLL | (sqpoll ? IORING_SETUP_SQPOLL : 0),
		      sqpoll ? 1000 : 0))
		return t_fail("setting up the polled ring");
	iov = (struct iovec){ buf, BUF_LEN };
	if (io_uring_register_files(&ring, &fd, 1) || io_uring_register_buffers(&ring, &iov, 1))
		return t_fail("registering the device and the buffer");
	close(fd);	/* the ring's slot holds it */
	fill_pattern(buf, BUF_LEN, 1);
	if (polled(&ring, true, buf, 0) != BUF_LEN)
		return t_fail("the polled write before the dump");
	memset(buf, 0, BUF_LEN);
	res = polled(&ring, false, buf, 0);
	if (res != BUF_LEN)
		return t_fail("the polled read before the dump");
	sqe = get_sqe(&ring);
	if (!sqe)
		return t_fail("no SQE");
	io_uring_prep_nop(sqe);
	sqe->user_data = PENDING_UD;
	/* submitted and completed, but not reaped */
	if (io_uring_submit_and_wait(&ring, 1) != 1)
		return t_fail("the pending NOP");
	expect_ring(kind, &ring, &p);
	expect("buf", "addr=%lu len=%d crc32=%u", (unsigned long)buf, BUF_LEN,
	       crc_of(buf, BUF_LEN));
	expect("file", "slot=0 path=%s", argv[2]);
	if (inflight) {
		/* the NOP's CQE goes: the read's is the one the continuation waits for */
		io_uring_cq_advance(&ring, 1);
		if (submit_unpolled(&ring, buf))
			return t_fail("the unpolled read");
	}
	if (owner_wait())
		return t_fail("no go");
	return finish(&ring, buf, inflight);
}
