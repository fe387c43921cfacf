// SPDX-License-Identifier: GPL-2.0
/* Fixed-buffer I/O through the ring (fixed_io.h). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixed_io.h"
#include "owner.h"
#include "ring.h"

void fill_pattern(void *p, size_t len, unsigned int seed)
{
	char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		c[i] = (char)(seed * 131 + i * 7 + (i >> 9));
}

uint32_t fixed_out_crc(struct io_uring *ring, int slot, void *addr, size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(ring);
	int fd = memfd_create("fixed_out", MFD_CLOEXEC), res;
	char *back = malloc(len);
	uint32_t crc = 0;

	if (fd >= 0 && back && sqe) {
		io_uring_prep_write_fixed(sqe, fd, addr, len, 0, slot);
		if (!ring_submit_wait(ring, &res) && res == (int)len &&
		    pread(fd, back, len, 0) == (ssize_t)len)
			crc = crc_of(back, len);
	}
	free(back);
	if (fd >= 0)
		close(fd);
	return crc;
}

uint32_t fixed_read_in(struct io_uring *ring, int slot, void *addr, size_t len,
		       unsigned int seed)
{
	struct io_uring_sqe *sqe = get_sqe(ring);
	int fd = memfd_create("fixed_in", MFD_CLOEXEC), res;
	char *data = malloc(len);
	uint32_t crc = 0;

	if (fd >= 0 && data && sqe) {
		fill_pattern(data, len, seed);
		if (pwrite(fd, data, len, 0) == (ssize_t)len) {
			io_uring_prep_read_fixed(sqe, fd, addr, len, 0, slot);
			if (!ring_submit_wait(ring, &res) && res == (int)len)
				crc = crc_of(data, len);
		}
	}
	free(data);
	if (fd >= 0)
		close(fd);
	return crc;
}
