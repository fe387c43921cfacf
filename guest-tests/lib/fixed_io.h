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
#endif /* GUEST_FIXED_IO_H */
