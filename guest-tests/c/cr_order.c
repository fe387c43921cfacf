// SPDX-License-Identifier: GPL-2.0
/*
 * Description: rings whose sharing a restore cannot rebuild in the
 * image's order (by fd), only in another: ucr_restore_image() finds one
 * and gives the rings their fds in the image's order again. Kinds
 * (argv[1]), each two or three rings built in this order:
 *
 *   attach  B starts an SQPOLL thread, A (fd moved below B's) attaches to
 *           it with IORING_SETUP_ATTACH_WQ: B first
 *   clone   R registers {x, y}; O clones R, takes b1 for slot 1; T clones
 *           O ({x, b1}); O takes b0 for slot 0. T shares x with R and b1
 *           with O, which share nothing: R, T, then O cloning T
 *   pages   O registers page p0 at x; p0's mapping goes and a new page
 *           p1 is mapped at x, which A (fd below O's) registers: O first,
 *           so that p0 is mapped, registered and unmapped before p1
 *
 * "expect buf" lines give the buffers (ring index in fd order). After
 * "go" the continuation, which proves the sharing by I/O: attach, NOPs on
 * both rings and one SQ thread in the process; clone, a pattern read into
 * x through R written out through T, one into b1 through O out through
 * T, and R's slot 1 apart from them; pages, what A and O see at slot 0
 * differs and a pattern read in through A leaves O's page as it was.
 *
 *   cr_order KIND resume DIR TABLE
 *
 * (TABLE: the buffers, "ring:slot:addr:len,...", or "none")
 * restores the image (ucr_restore_image()) and runs the same
 * continuation; test_uringcr_restore.py::test_restore_in_another_order
 * compares them.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fixed_io.h"
#include "guest.h"
#include "owner.h"
#include "resume.h"

#define MAX_RINGS	3
#define MAX_SLOTS	2

static struct iovec table[MAX_RINGS][MAX_SLOTS];
static unsigned int nr_rings;

static char *map_anon(size_t len, unsigned int seed)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	fill_pattern(p, len, seed);
	return p;
}

static int update(struct io_uring *ring, int slot, void *addr)
{
	struct iovec iov = { addr, PAGE_SZ };
	__u64 tag = 0;

	return io_uring_register_buffers_update_tag(ring, slot, &iov, &tag, 1) == 1 ? 0 : -1;
}

/* Moves @ring's fd above @above's, so that fd order is not set-up order. */
/* rings[0] is A (attached, the lower fd), rings[1] B (the thread's owner) */
static int build_attach(struct io_uring *rings)
{
	struct io_uring_params p;

	if (ring_init(&rings[1], &p, 8, 0, IORING_SETUP_SQPOLL, 1000))
		return -1;
	if (ring_attach(&rings[0], &rings[1], IORING_SETUP_SQPOLL, 0))
		return -1;
	nr_rings = 2;
	return ring_fd_above(&rings[1], rings[0].ring_fd);
}

/* rings[0] R, rings[1] O, rings[2] T, in set-up and fd order */
static int build_clone(struct io_uring *rings)
{
	char *x = map_anon(PAGE_SZ, 1), *y = map_anon(PAGE_SZ, 2);
	char *b0 = map_anon(PAGE_SZ, 3), *b1 = map_anon(PAGE_SZ, 4);
	struct iovec two[2] = { { x, PAGE_SZ }, { y, PAGE_SZ } };
	int i;

	if (!x || !y || !b0 || !b1)
		return -1;
	for (i = 0; i < 3; i++)
		if (ring_setup(&rings[i], 8, false))
			return -1;
	if (io_uring_register_buffers(&rings[0], two, 2) ||
	    ring_clone_buffers(&rings[1], &rings[0]) || update(&rings[1], 1, b1) ||
	    ring_clone_buffers(&rings[2], &rings[1]) || update(&rings[1], 0, b0))
		return -1;
	table[0][0] = table[2][0] = two[0];
	table[0][1] = two[1];
	table[1][0] = (struct iovec){ b0, PAGE_SZ };
	table[1][1] = table[2][1] = (struct iovec){ b1, PAGE_SZ };
	nr_rings = 3;
	return 0;
}

/* rings[0] A (the new page, the lower fd), rings[1] O (the old page) */
static int build_pages(struct io_uring *rings)
{
	char *x = map_anon(PAGE_SZ, 5);
	struct iovec iov = { x, PAGE_SZ };

	if (!x || ring_setup(&rings[1], 8, false) ||
	    io_uring_register_buffers(&rings[1], &iov, 1) || munmap(x, PAGE_SZ) ||
	    mmap(x, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != x)
		return -1;
	fill_pattern(x, PAGE_SZ, 6);
	if (ring_setup(&rings[0], 8, false) || io_uring_register_buffers(&rings[0], &iov, 1))
		return -1;
	table[0][0] = table[1][0] = iov;
	nr_rings = 2;
	return ring_fd_above(&rings[1], rings[0].ring_fd);
}

static enum t_exit finish_attach(struct io_uring *rings)
{
	int i, n;

	for (i = 0; i < 2; i++)
		if (run_nops(&rings[i], 4, 1))
			return t_fail("NOPs on an attached ring");
	n = ring_sq_threads();
	result("sq_threads=%d", n);
	return n == 1 ? t_pass() : t_fail("the two rings are not on one SQ thread");
}

static enum t_exit finish_clone(struct io_uring *rings)
{
	uint32_t in, out, other;

	in = fixed_read_in(&rings[0], 0, table[0][0].iov_base, PAGE_SZ, 11);
	out = fixed_out_crc(&rings[2], 0, table[2][0].iov_base, PAGE_SZ);
	result("x in_via_r=%u out_via_t=%u", in, out);
	if (!in || out != in)
		return t_fail("x is not one buffer in R and T");
	in = fixed_read_in(&rings[1], 1, table[1][1].iov_base, PAGE_SZ, 12);
	out = fixed_out_crc(&rings[2], 1, table[2][1].iov_base, PAGE_SZ);
	result("b1 in_via_o=%u out_via_t=%u", in, out);
	if (!in || out != in)
		return t_fail("b1 is not one buffer in O and T");
	other = fixed_out_crc(&rings[0], 1, table[0][1].iov_base, PAGE_SZ);
	result("y via_r=%u", other);
	return other && other != in ? t_pass() : t_fail("R's slot 1 is T's");
}

static enum t_exit finish_pages(struct io_uring *rings)
{
	uint32_t a, o, in;

	a = fixed_out_crc(&rings[0], 0, table[0][0].iov_base, PAGE_SZ);
	o = fixed_out_crc(&rings[1], 0, table[1][0].iov_base, PAGE_SZ);
	result("x via_a=%u via_o=%u", a, o);
	if (!a || !o || a == o)
		return t_fail("A and O do not see two pages at x");
	in = fixed_read_in(&rings[0], 0, table[0][0].iov_base, PAGE_SZ, 13);
	result("x in_via_a=%u via_o=%u", in,
	       fixed_out_crc(&rings[1], 0, table[1][0].iov_base, PAGE_SZ));
	return in && fixed_out_crc(&rings[1], 0, table[1][0].iov_base, PAGE_SZ) == o ?
	       t_pass() : t_fail("a read into A's page reached O's");
}

static const struct {
	const char *kind;
	int (*build)(struct io_uring *rings);
	enum t_exit (*finish)(struct io_uring *rings);
	unsigned int nr_rings;
} kinds[] = {
	{ "attach", build_attach, finish_attach, 2 },
	{ "clone", build_clone, finish_clone, 3 },
	{ "pages", build_pages, finish_pages, 2 },
};

int main(int argc, char *argv[])
{
	struct io_uring rings[MAX_RINGS];
	unsigned int i, k, j;

	t_start("cr_order", argc, argv);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (argc > 1 && !strcmp(argv[1], kinds[k].kind))
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return t_fail("unknown kind");
	if (argc > 4 && !strcmp(argv[2], "resume")) {
		nr_rings = kinds[k].nr_rings;
		if (strcmp(argv[4], "none") &&
		    parse_buf_table(argv[4], &table[0][0], MAX_RINGS, MAX_SLOTS))
			return t_fail("the buffer list");
		if (resume_rings(argv[3], nr_rings, rings))
			return t_fail("restoring the image");
		return kinds[k].finish(rings);
	}
	if (kinds[k].build(rings))
		return t_fail("building the rings");
	for (i = 0; i < nr_rings; i++) {
		expect("ring", "fd=%d index=%u", rings[i].ring_fd, i);
		for (j = 0; j < MAX_SLOTS; j++)
			if (table[i][j].iov_base)
				expect("buf", "ring=%u slot=%u addr=%lu len=%zu", i, j,
				       (unsigned long)table[i][j].iov_base, table[i][j].iov_len);
	}
	if (owner_wait())
		return t_fail("no go");
	return kinds[k].finish(rings);
}
