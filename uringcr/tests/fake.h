/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Rings built by hand for the host unit tests (fake.c): buffers with one
 * bvec per page, pfns chosen to say which pages are one.
 */
#ifndef UCR_FAKE_H
#define UCR_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define K	1024ULL
#define BASE	0x7f0000000000ULL

struct fake {
	struct ucr_ring rings[4];
	struct ucr_buf bufs[4][4];
	struct ucr_bvec bv[4][4][32];
	bool cloned[4][4];
	unsigned int nr;
};

/* Four rings with no buffers (fds 10..13, no SQPOLL), calloc()ed. */
struct fake *fresh(void);
/*
 * Buffer @slot of ring @ring: @len bytes at BASE + @off, pages pfn0,
 * pfn0 + 1, ...; its own buffer (one reference) until share() says
 * otherwise. Buffers go in in slot order.
 */
void buf(struct fake *f, unsigned int ring, unsigned int slot, uint64_t off,
	 uint64_t len, enum ucr_backing kind, uint64_t pfn0);
/* Slot @slot of rings @a and @b (and @c unless -1) is one buffer. */
void share(struct fake *f, unsigned int slot, int a, int b, int c);

#endif /* UCR_FAKE_H */
