// SPDX-License-Identifier: GPL-2.0
/*
 * Description: three rings that each registered the same memory on their
 * own (IORING_REGISTER_BUFFERS in each, no clone): buffer objects of their
 * own over the same pages. P is a pool of 20 pages, G two pages nothing
 * maps any more, H a page whose address was mapped again:
 *
 *   A {P[0,64K), G, H}      H then goes, and H2 is mapped at H's address
 *   B {P[16K,48K), P[8K,24K), H2}
 *   C {P[48K,80K), G}       then G goes
 *
 * so A and B overlap in P, B's two slots overlap each other, C reaches
 * past A's end of P; G's pages are held by A and C with nothing mapping
 * them; A's slot 2 holds H's old page, B's slot 2 the page now mapped
 * there. "expect buf" lines give each buffer with its CRC32, in the
 * image's ring order; test_uringcr.py::test_dump_buffers_on_shared_pages
 * checks the image (pfns included) against them.
 *
 * The continuation after "go" proves by I/O which pages are one: every
 * buffer is written out through its ring; a pattern read into P through
 * one ring must come out through another and be in memory; one read into G
 * through A must come out through C; A's slot 2 must keep H's page, apart
 * from B's slot 2 and what memory shows at that address.
 *
 *   cr_pool resume DIR TABLE [taken]
 *
 * restores the three rings into a new process (ucr_restore_image()) and
 * runs the same continuation; test_uringcr_restore.py::
 * test_restore_buffers_on_shared_pages compares the two. With "taken" a
 * page of C's own part of the pool is mapped first, so that the restore
 * fails at C, after A and B: it passes if the restore fails (the test
 * checks that nothing of A and B is left).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fixed_io.h"
#include "guest.h"
#include "owner.h"
#include "resume.h"

#define NR_RINGS	3
#define NR_SLOTS	3
#define KB		1024UL

static struct iovec table[NR_RINGS][NR_SLOTS];
static uint32_t gone_crc[NR_RINGS][NR_SLOTS];	/* contents taken before munmap() */

static char *map_anon(void *at, size_t len)
{
	char *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int build(struct io_uring *rings)
{
	char *p = map_anon(NULL, 80 * KB), *g = map_anon(NULL, 2 * PAGE_SZ);
	char *h = map_anon(NULL, PAGE_SZ);
	int i;

	if (!p || !g || !h)
		return -1;
	fill_pattern(p, 80 * KB, 1);
	fill_pattern(g, 2 * PAGE_SZ, 2);
	fill_pattern(h, PAGE_SZ, 3);
	for (i = 0; i < NR_RINGS; i++)
		if (ring_setup(&rings[i], 8, false))
			return -1;
	table[0][0] = (struct iovec){ p, 64 * KB };
	table[0][1] = (struct iovec){ g, 2 * PAGE_SZ };
	table[0][2] = (struct iovec){ h, PAGE_SZ };
	table[1][0] = (struct iovec){ p + 16 * KB, 32 * KB };
	table[1][1] = (struct iovec){ p + 8 * KB, 16 * KB };
	table[1][2] = (struct iovec){ h, PAGE_SZ };
	table[2][0] = (struct iovec){ p + 48 * KB, 32 * KB };
	table[2][1] = (struct iovec){ g, 2 * PAGE_SZ };
	if (io_uring_register_buffers(&rings[0], table[0], NR_SLOTS))
		return -1;
	gone_crc[0][2] = crc_of(h, PAGE_SZ);
	if (munmap(h, PAGE_SZ) || map_anon(h, PAGE_SZ) != h)
		return -1;
	fill_pattern(h, PAGE_SZ, 4);
	if (io_uring_register_buffers(&rings[1], table[1], NR_SLOTS) ||
	    io_uring_register_buffers(&rings[2], table[2], 2))
		return -1;
	gone_crc[0][1] = gone_crc[2][1] = crc_of(g, 2 * PAGE_SZ);
	return munmap(g, 2 * PAGE_SZ);
}

/* A pattern read in through @in's slot comes out through @out's, and memory has it. */
static int one_page(struct io_uring *rings, int in, int out, int slot, int out_slot,
		    char *at, unsigned int seed, const char *what)
{
	uint32_t got = fixed_read_in(&rings[in], slot, at, PAGE_SZ, seed);
	uint32_t crc = fixed_out_crc(&rings[out], out_slot, at, PAGE_SZ);

	result("%s in=%u out=%u memory=%u", what, got, crc, crc_of(at, PAGE_SZ));
	return got && crc == got && crc_of(at, PAGE_SZ) == got ? 0 : -1;
}

static enum t_exit finish(struct io_uring *rings)
{
	char *p = table[0][0].iov_base, *g = table[0][1].iov_base, *h = table[0][2].iov_base;
	uint32_t crc, in;

	if (out_all(rings, &table[0][0], NR_RINGS, NR_SLOTS))
		return t_fail("writing a buffer out");
	if (one_page(rings, 0, 1, 0, 0, p + 16 * KB, 41, "a_to_b") ||
	    one_page(rings, 1, 1, 1, 0, p + 20 * KB, 42, "b1_to_b0") ||
	    one_page(rings, 2, 0, 0, 0, p + 56 * KB, 43, "c_to_a") ||
	    one_page(rings, 1, 0, 1, 0, p + 12 * KB, 44, "b1_to_a"))
		return t_fail("the pool is not one set of pages in A, B and C");
	in = fixed_read_in(&rings[2], 0, p + 72 * KB, PAGE_SZ, 45);
	result("c_only in=%u memory=%u", in, crc_of(p + 72 * KB, PAGE_SZ));
	if (!in || crc_of(p + 72 * KB, PAGE_SZ) != in)
		return t_fail("C's part of the pool past A's is not the memory there");
	in = fixed_read_in(&rings[0], 1, g, 2 * PAGE_SZ, 46);
	crc = fixed_out_crc(&rings[2], 1, g, 2 * PAGE_SZ);
	result("g in_via_a=%u out_via_c=%u", in, crc);
	if (!in || crc != in)
		return t_fail("G is not one set of pages in A and C");
	in = fixed_read_in(&rings[0], 2, h, PAGE_SZ, 47);
	crc = fixed_out_crc(&rings[1], 2, h, PAGE_SZ);
	result("h in_via_a=%u via_b=%u memory=%u", in, crc, crc_of(h, PAGE_SZ));
	if (!in || crc == in || crc_of(h, PAGE_SZ) != crc)
		return t_fail("A's slot 2 is the page mapped at its address");
	return t_pass();
}

int main(int argc, char *argv[])
{
	struct io_uring rings[NR_RINGS];
	int i, j;

	t_start("cr_pool", argc, argv);
	if (argc > 3 && !strcmp(argv[1], "resume")) {
		if (parse_buf_table(argv[3], &table[0][0], NR_RINGS, NR_SLOTS))
			return t_fail("the buffer list");
		if (argc > 4 && !strcmp(argv[4], "taken")) {
			/* C's own part of the pool is taken: C's restore fails, A's and B's go too */
			char *at = (char *)table[2][0].iov_base + 24 * KB;

			if (mmap(at, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
				 MAP_FIXED_NOREPLACE, -1, 0) != at)
				return t_fail("taking C's part of the pool");
			return resume_rings(argv[2], NR_RINGS, rings) ?
			       t_pass() : t_fail("restored over a taken address");
		}
		if (resume_rings(argv[2], NR_RINGS, rings))
			return t_fail("restoring the image");
		return finish(rings);
	}
	if (build(rings))
		return t_fail("building the rings");
	for (i = 0; i < NR_RINGS; i++) {
		expect("ring", "fd=%d index=%d", rings[i].ring_fd, i);
		for (j = 0; j < NR_SLOTS; j++) {
			struct iovec *v = &table[i][j];
			int mapped = !gone_crc[i][j];

			if (!v->iov_base)
				continue;
			expect("buf", "ring=%d slot=%d addr=%lu len=%zu crc32=%u mapped=%d",
			       i, j, (unsigned long)v->iov_base, v->iov_len,
			       mapped ? crc_of(v->iov_base, v->iov_len) : gone_crc[i][j], mapped);
		}
	}
	if (owner_wait())
		return t_fail("no go");
	return finish(rings);
}
