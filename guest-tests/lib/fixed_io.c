// SPDX-License-Identifier: GPL-2.0
/* Fixed-buffer I/O through the ring (fixed_io.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fixed_io.h"
#include "owner.h"
#include "resume.h"
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

int parse_buf_table(const char *s, struct iovec *table, unsigned int nr_rings,
		    unsigned int nr_slots)
{
	while (*s) {
		unsigned long ring, slot, addr, len;
		int n = 0;

		if (sscanf(s, "%lu:%lu:%lu:%lu%n", &ring, &slot, &addr, &len, &n) != 4 ||
		    ring >= nr_rings || slot >= nr_slots)
			return -1;
		table[ring * nr_slots + slot] = (struct iovec){ (void *)addr, len };
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

int out_all(struct io_uring *rings, const struct iovec *table, unsigned int nr_rings,
	    unsigned int nr_slots)
{
	unsigned int i, j;

	for (i = 0; i < nr_rings; i++) {
		for (j = 0; j < nr_slots; j++) {
			const struct iovec *v = &table[i * nr_slots + j];
			uint32_t crc;

			if (!v->iov_base)
				continue;
			crc = fixed_out_crc(&rings[i], j, v->iov_base, v->iov_len);
			result("ring=%u slot=%u crc=%u", i, j, crc);
			if (!crc)
				return -1;
		}
	}
	return 0;
}
