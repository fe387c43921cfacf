// SPDX-License-Identifier: GPL-2.0
/*
 * Description: registered buffers for uringcr to dump: a sparse table of
 * 12 slots with sizes from 1 byte to 1 MiB, starts and ends mid-page,
 * anonymous, THP (madvise), shmem (a memfd mapped shared) and hugetlb
 * (when the pool has pages; argv "hugetlb=0" leaves that slot empty), and
 * in slot 9 three pages unmapped right after registration (the ring pins
 * them; nothing maps them: mapped=0 in its expect line).
 * Every buffer is filled with its own pattern; "expect buf" lines give
 * slot, address, length and the CRC32 of the contents, "expect bufs" the
 * table size. After "go" it checks the contents are untouched.
 * test_uringcr.py::test_dump_buffers checks the image against it.
 *
 *   cr_bufs resume DIR slot:addr:len,...
 *
 * restores such an image into a new process; both then run the same
 * continuation (fixed-buffer reads and writes of every slot, "result"
 * lines that test_uringcr_restore.py compares).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fixed_io.h"
#include "guest.h"
#include "owner.h"
#include "resume.h"

#define NR_SLOTS	12

static char *map_anon(size_t len, int extra)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* 2 MiB aligned anonymous memory that madvise() asks to back by a THP */
static char *map_thp(void)
{
	char *p = map_anon(2 * HPAGE_SZ, 0);
	char *a;

	if (!p)
		return NULL;
	a = (char *)(((unsigned long)p + HPAGE_SZ - 1) & ~(HPAGE_SZ - 1));
	madvise(a, HPAGE_SZ, MADV_HUGEPAGE);
	return a;
}

static char *map_shmem(size_t len)
{
	int fd = memfd_create("cr_bufs", 0);
	char *p;

	if (fd < 0 || ftruncate(fd, len))
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * The continuation, the same in the resumed original and in the restored
 * copy: each buffer written out through the ring, then a new pattern read
 * into it with READ_FIXED and written out again.
 */
static enum t_exit finish(struct io_uring *ring, const struct iovec *iov)
{
	int i;

	for (i = 0; i < NR_SLOTS; i++) {
		uint32_t before, in, after;

		if (!iov[i].iov_base)
			continue;
		before = fixed_out_crc(ring, i, iov[i].iov_base, iov[i].iov_len);
		in = fixed_read_in(ring, i, iov[i].iov_base, iov[i].iov_len, 100 + i);
		after = fixed_out_crc(ring, i, iov[i].iov_base, iov[i].iov_len);
		result("slot=%d before=%u after=%u", i, before, after);
		if (!before || !in || after != in)
			return t_fail("fixed-buffer I/O after the dump");
	}
	return run_nops(ring, 2, 1) ? t_fail("NOPs after the dump") : t_pass();
}

/* "slot:addr:len,...": the buffers of the image, for the resume mode */
static int parse_bufs(const char *s, struct iovec *iov)
{
	while (*s) {
		unsigned long slot, addr, len;
		int n = 0;

		if (sscanf(s, "%lu:%lu:%lu%n", &slot, &addr, &len, &n) != 3 || slot >= NR_SLOTS)
			return -1;
		iov[slot] = (struct iovec){ (void *)addr, len };
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	struct iovec iov[NR_SLOTS] = {};
	uint32_t crc[NR_SLOTS] = {};
	struct io_uring_params p;
	struct io_uring ring;
	char *small, *big, *thp, *shm, *huge = NULL;
	int i, ret;

	t_start("cr_bufs", argc, argv);
	if (argc > 3 && !strcmp(argv[1], "resume")) {
		/* cr_bufs resume DIR slot:addr:len,... */
		if (parse_bufs(argv[3], iov))
			return t_fail("the buffer list");
		if (resume_ring(argv[2], 0, &ring))
			return t_fail("restoring the image");
		return finish(&ring, iov);
	}
	small = map_anon(16 * PAGE_SZ, 0);
	big = map_anon(1 << 20, 0);
	thp = map_thp();
	shm = map_shmem(64 * 1024);
	if (t_arg_long(argc, argv, "hugetlb", 1))
		huge = map_anon(HPAGE_SZ, MAP_HUGETLB);
	if (!small || !big || !thp || !shm)
		return t_fail("mmap");
	if (madvise(small, 16 * PAGE_SZ, MADV_NOHUGEPAGE))
		t_diag("madvise(MADV_NOHUGEPAGE) failed");

	/* slots 1 and 5 stay empty */
	iov[0] = (struct iovec){ small + 10, 1 };
	iov[2] = (struct iovec){ small + PAGE_SZ, PAGE_SZ };
	iov[3] = (struct iovec){ small + 2 * PAGE_SZ + 100, 3 * PAGE_SZ + 200 };
	iov[4] = (struct iovec){ big, 1 << 20 };
	iov[6] = (struct iovec){ thp, HPAGE_SZ };
	iov[7] = (struct iovec){ shm, 64 * 1024 };
	iov[8] = (struct iovec){ small + 8 * PAGE_SZ - 1, 2 };
	iov[10] = (struct iovec){ small + 10 * PAGE_SZ, 6 * PAGE_SZ };
	iov[9] = (struct iovec){ map_anon(3 * PAGE_SZ, 0), 3 * PAGE_SZ };
	if (!iov[9].iov_base)
		return t_fail("mmap");
	if (huge)
		iov[11] = (struct iovec){ huge, HPAGE_SZ };
	else
		t_diag("no hugetlb page: slot 11 stays empty");
	for (i = 0; i < NR_SLOTS; i++) {
		if (iov[i].iov_base)
			fill_pattern(iov[i].iov_base, iov[i].iov_len, i + 1);
	}
	/* slot 0 and slot 2 overlap nothing; slot 8 spans a page boundary */
	for (i = 0; i < NR_SLOTS; i++) {
		if (iov[i].iov_base)
			crc[i] = crc_of(iov[i].iov_base, iov[i].iov_len);
	}

	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_buffers(&ring, iov, NR_SLOTS);
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	/* from here on only the ring holds slot 9's pages */
	if (munmap(iov[9].iov_base, iov[9].iov_len))
		return t_fail("munmap");
	expect_ring("bufs", &ring, &p);
	expect("bufs", "slots=%d", NR_SLOTS);
	for (i = 0; i < NR_SLOTS; i++) {
		if (iov[i].iov_base)
			expect("buf", "slot=%d addr=%lu len=%zu crc32=%u mapped=%d", i,
			       (unsigned long)iov[i].iov_base, iov[i].iov_len, crc[i], i != 9);
	}
	if (owner_wait())
		return t_fail("no go");
	for (i = 0; i < NR_SLOTS; i++) {
		if (i != 9 && iov[i].iov_base && crc_of(iov[i].iov_base, iov[i].iov_len) != crc[i]) {
			t_diag("slot %d changed", i);
			return t_fail("the dump changed a buffer");
		}
	}
	if (fixed_out_crc(&ring, 9, iov[9].iov_base, iov[9].iov_len) != crc[9])
		return t_fail("the unmapped buffer's pages changed");
	return finish(&ring, iov);
}
