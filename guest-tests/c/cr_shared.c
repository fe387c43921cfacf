// SPDX-License-Identifier: GPL-2.0
/*
 * Description: registered buffers shared between three rings, the way
 * 6.12 shares them (IORING_REGISTER_CLONE_BUFFERS copies a whole table,
 * IORING_REGISTER_BUFFERS_UPDATE replaces one slot):
 *
 *   A registers {a0, -, a2, a3}; a3's mapping goes (only the rings hold it)
 *   B clones A, then replaces slot 2 with b2
 *   C clones B, then fills slot 1 with c1
 *   A replaces slot 0 with a0n
 *
 * A and B register one eventfd, C one of its own. Which
 * leaves A {a0n, -, a2, a3}, B {a0, -, b2, a3}, C {a0, c1, b2, a3}:
 * a3 has 3 references, a0 and b2 have 2, the rest 1. "expect buf" lines
 * give each ring's buffers with their references and contents' CRC32, in
 * the image's ring order (by fd). test_uringcr.py::test_dump_shared_buffers
 * checks the image against them.
 *
 * The continuation after "go" proves the sharing by I/O, not by memory:
 * every buffer of every ring is written out through its ring; then a new
 * pattern is read into slot 3 through A and written out through C (a3 is
 * not mapped: only one buffer object can carry it across), and one into
 * slot 2 through C is written out through B and A (B's b2 shows it, A's a2
 * must not). Last the eventfds' counts: A's and B's CQEs went to one.
 *
 *   cr_shared resume DIR
 *
 * restores all three rings into a new process (ucr_restore_image(): the
 * clones and the shared eventfd again) and runs the same continuation;
 * test_uringcr_restore.py::test_restore_shared_buffers compares them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fixed_io.h"
#include "guest.h"
#include "owner.h"
#include "resume.h"

#define NR_RINGS	3
#define NR_SLOTS	4

/* what each ring has at each slot, as the original built it */
static struct iovec table[NR_RINGS][NR_SLOTS];
static uint32_t a3_crc;		/* a3's contents, taken before its munmap() */
static int evfd_ab = -1, evfd_c = -1;

static char *map_anon(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int update(struct io_uring *ring, int slot, void *addr, size_t len)
{
	struct iovec iov = { addr, len };
	__u64 tag = 0;

	return io_uring_register_buffers_update_tag(ring, slot, &iov, &tag, 1) == 1 ? 0 : -1;
}

static int build(struct io_uring *rings)
{
	struct iovec a[NR_SLOTS] = {};
	char *a0 = map_anon(2 * PAGE_SZ), *a2 = map_anon(PAGE_SZ), *a3 = map_anon(3 * PAGE_SZ);
	char *b2 = map_anon(PAGE_SZ), *c1 = map_anon(PAGE_SZ), *a0n = map_anon(PAGE_SZ);
	int i, j;

	if (!a0 || !a2 || !a3 || !b2 || !c1 || !a0n)
		return -1;
	fill_pattern(a0, 2 * PAGE_SZ, 1);
	fill_pattern(a2, PAGE_SZ, 2);
	fill_pattern(a3, 3 * PAGE_SZ, 3);
	a3_crc = crc_of(a3, 3 * PAGE_SZ);
	fill_pattern(b2, PAGE_SZ, 4);
	fill_pattern(c1, PAGE_SZ, 5);
	fill_pattern(a0n, PAGE_SZ, 6);
	for (i = 0; i < NR_RINGS; i++)
		if (ring_setup(&rings[i], 8, false))
			return -1;
	a[0] = (struct iovec){ a0, 2 * PAGE_SZ };
	a[2] = (struct iovec){ a2, PAGE_SZ };
	a[3] = (struct iovec){ a3, 3 * PAGE_SZ };
	if (io_uring_register_buffers(&rings[0], a, NR_SLOTS))
		return -1;
	if (munmap(a3, 3 * PAGE_SZ))
		return -1;
	if (ring_clone_buffers(&rings[1], &rings[0]) || update(&rings[1], 2, b2, PAGE_SZ))
		return -1;
	if (ring_clone_buffers(&rings[2], &rings[1]) || update(&rings[2], 1, c1, PAGE_SZ))
		return -1;
	evfd_ab = eventfd(0, EFD_CLOEXEC);
	evfd_c = eventfd(0, EFD_CLOEXEC);
	if (evfd_ab < 0 || evfd_c < 0 || io_uring_register_eventfd(&rings[0], evfd_ab) ||
	    io_uring_register_eventfd(&rings[1], evfd_ab) ||
	    io_uring_register_eventfd(&rings[2], evfd_c))
		return -1;
	if (update(&rings[0], 0, a0n, PAGE_SZ))
		return -1;
	for (i = 0; i < NR_RINGS; i++)
		for (j = 0; j < NR_SLOTS; j++)
			table[i][j] = a[j];
	table[0][0] = (struct iovec){ a0n, PAGE_SZ };
	table[1][2] = table[2][2] = (struct iovec){ b2, PAGE_SZ };
	table[2][1] = (struct iovec){ c1, PAGE_SZ };
	return 0;
}

/* what the CQEs since the last read added to the eventfd: -1 on failure */
static long long evfd_count(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK))
		return -1;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return errno == EAGAIN ? 0 : -1;
	return (long long)v;
}

/* the continuation: the same in the resumed original and the restored copy */
static enum t_exit finish(struct io_uring *rings)
{
	struct iovec *s3 = &table[0][3], *s2 = &table[2][2];
	long long ab, c;
	uint32_t crc, in;

	if (out_all(rings, &table[0][0], NR_RINGS, NR_SLOTS))
		return t_fail("writing a buffer out");
	in = fixed_read_in(&rings[0], 3, s3->iov_base, s3->iov_len, 33);
	crc = fixed_out_crc(&rings[2], 3, s3->iov_base, s3->iov_len);
	result("slot3 in_via_a=%u out_via_c=%u", in, crc);
	if (!in || crc != in)
		return t_fail("slot 3 is not one buffer in A and C");
	in = fixed_read_in(&rings[2], 2, s2->iov_base, s2->iov_len, 22);
	crc = fixed_out_crc(&rings[1], 2, s2->iov_base, s2->iov_len);
	result("slot2 in_via_c=%u out_via_b=%u", in, crc);
	if (!in || crc != in)
		return t_fail("slot 2 is not one buffer in B and C");
	crc = fixed_out_crc(&rings[0], 2, table[0][2].iov_base, table[0][2].iov_len);
	result("slot2 via_a=%u", crc);
	if (!crc || crc == in)
		return t_fail("A's slot 2 is B's buffer");
	ab = evfd_count(evfd_ab);
	c = evfd_count(evfd_c);
	result("eventfd ab=%lld c=%lld", ab, c);
	if (ab <= 0 || c <= 0)
		return t_fail("the eventfds' counts");
	return t_pass();
}

int main(int argc, char *argv[])
{
	struct io_uring rings[NR_RINGS];
	unsigned int refs[NR_RINGS][NR_SLOTS] = {
		{ 1, 0, 1, 3 }, { 2, 0, 2, 3 }, { 2, 1, 2, 3 },
	};
	int i, j;

	t_start("cr_shared", argc, argv);
	if (argc > 3 && !strcmp(argv[1], "resume")) {
		if (parse_buf_table(argv[3], &table[0][0], NR_RINGS, NR_SLOTS))
			return t_fail("the buffer list");
		if (resume_rings(argv[2], NR_RINGS, rings))
			return t_fail("restoring the image");
		evfd_ab = resumed_evfd(0);
		evfd_c = resumed_evfd(2);
		return finish(rings);
	}
	if (build(rings))
		return t_fail("building the rings");
	for (i = 0; i < NR_RINGS; i++) {
		struct iovec *v;

		expect("ring", "fd=%d index=%d", rings[i].ring_fd, i);
		for (j = 0; j < NR_SLOTS; j++) {
			v = &table[i][j];
			if (!v->iov_base)
				continue;
			expect("buf", "ring=%d slot=%d addr=%lu len=%zu refs=%u crc32=%u mapped=%d",
			       i, j, (unsigned long)v->iov_base, v->iov_len, refs[i][j],
			       j == 3 ? a3_crc : crc_of(v->iov_base, v->iov_len), j != 3);
		}
	}
	if (owner_wait())
		return t_fail("no go");
	return finish(rings);
}
