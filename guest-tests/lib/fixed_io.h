/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Registered buffers seen through the ring, not through memory: what a
 * fixed buffer holds (WRITE_FIXED of it), and new contents for it
 * (READ_FIXED into it). These also reach a buffer that nothing maps any
 * more, and they tell one buffer from two that look the same.
 */
#ifndef GUEST_FIXED_IO_H
#define GUEST_FIXED_IO_H
#include <stddef.h>
#include <stdint.h>
#include <liburing.h>
/* @len bytes of the pattern @seed (the same seed, the same bytes) */
void fill_pattern(void *p, size_t len, unsigned int seed);
/*
 * The CRC32 of buffer @slot (at @addr, @len bytes) as the ring sees it:
 * WRITE_FIXED of it into a memfd, read back. 0 on failure.
 */
uint32_t fixed_out_crc(struct io_uring *ring, int slot, void *addr, size_t len);
/*
 * READ_FIXED of the pattern @seed into buffer @slot: the pattern's CRC32,
 * or 0 on failure.
 */
uint32_t fixed_read_in(struct io_uring *ring, int slot, void *addr, size_t len,
		       unsigned int seed);
struct iovec;
/*
 * The resume modes' buffer table: @nr_rings rows of @nr_slots in @table,
 * from "ring:slot:addr:len,..." (the scenario's expect lines). 0 or -1.
 */
int parse_buf_table(const char *s, struct iovec *table, unsigned int nr_rings,
		    unsigned int nr_slots);
/*
 * Every buffer of @table written out through its ring (fixed_out_crc()),
 * a "result ring=R slot=S crc=C" line each. 0, or -1 when one failed.
 */
int out_all(struct io_uring *rings, const struct iovec *table, unsigned int nr_rings,
	    unsigned int nr_slots);
#endif /* GUEST_FIXED_IO_H */
