/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ring owner of a checkpoint scenario (c/cr_*.c): it builds its rings,
 * prints what it built as "expect" lines, says "owner ready pid=<pid>" and
 * waits on stdin while test_uringcr.py dumps it from another process; on
 * "go" it checks that its rings are exactly as it left them and still
 * work, and prints its result.
 */
#ifndef GUEST_OWNER_H
#define GUEST_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

/* "owner ready pid=<pid>", flushed; then blocks until "go" (0) or EOF (-1). */
int owner_wait(void);
/* owner_wait() for "go <args>": the args (without the newline) in @args */
int owner_wait_args(char *args, size_t size);

/* "expect <what> key=value ...": printf() with the prefix and a newline */
void expect(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "expect ring ..." of @ring: fd, inode, setup flags and sizes */
void expect_ring(const char *name, struct io_uring *ring,
		 const struct io_uring_params *p);

/*
 * "expect counters": the SQ/CQ heads and tails as liburing and the ring
 * memory have them; and a copy of those to compare with after the dump.
 */
struct ring_snap {
	uint32_t sq_head, sq_tail, cq_head, cq_tail;
	uint32_t sqe_head, sqe_tail;	/* liburing's own */
	unsigned char cqes[64][32];
	unsigned int nr_cqes;
};

void snap_ring(struct io_uring *ring, struct ring_snap *s);
void expect_counters(const char *name, const struct ring_snap *s);
/* Is the ring as snap_ring() left it? Diagnostics name the difference. */
bool same_ring(struct io_uring *ring, const struct ring_snap *s);

/* zlib crc32 of @len bytes */
uint32_t crc_of(const void *buf, size_t len);

/*
 * io_uring_get_sqe(), waiting up to 5 s (scaled) for a free entry: on an
 * SQPOLL ring the thread publishes the new SQ head after it posted the
 * completions, so a reaped ring can look full for a moment. NULL: none.
 */
struct io_uring_sqe *get_sqe(struct io_uring *ring);

/* @n NOPs with user_data base+i, submitted and reaped: counters move on. */
int run_nops(struct io_uring *ring, unsigned int n, uint64_t base);

#endif /* GUEST_OWNER_H */
