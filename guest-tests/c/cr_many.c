// SPDX-License-Identifier: GPL-2.0
/*
 * Description: tables at io_uring's limits for uringcr to dump:
 * bufs=N registered buffers (default 16384, IORING_MAX_REG_BUFFERS), one
 * page each and every 16th four pages, every 7th slot empty; files=M file
 * slots (default 65536), every 3rd empty, the others one of three files.
 * "expect bufs" gives the counts, the sum of addresses and lengths and the
 * CRC32 of all contents in slot order; "expect files" the counts per path.
 * test_uringcr.py::test_dump_many checks the image against them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <zlib.h>

#include "guest.h"
#include "owner.h"

int main(int argc, char *argv[])
{
	long nbufs = 16384, nfiles = 65536, i;
	const char *paths[3] = { "/dev/null", "/dev/zero", "/dev/full" };
	unsigned long sum_addr = 0, sum_len = 0, used = 0, used_files = 0;
	long per_path[3] = {};
	struct rlimit rl;
	struct io_uring_params p;
	struct io_uring ring;
	struct iovec *iov;
	uint32_t crc = 0;
	int fds[3], *table, ret;
	size_t pages = 0;
	char *mem;

	t_start("cr_many", argc, argv);
	nbufs = t_arg_long(argc, argv, "bufs", nbufs);
	nfiles = t_arg_long(argc, argv, "files", nfiles);
	rl.rlim_cur = rl.rlim_max = nfiles + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return t_fail("setrlimit(RLIMIT_NOFILE)");
	iov = calloc(nbufs, sizeof(*iov));
	table = calloc(nfiles ? nfiles : 1, sizeof(*table));
	if (!iov || !table)
		return t_fail("calloc");
	for (i = 0; i < nbufs; i++)
		pages += i % 16 ? 1 : 4;
	mem = mmap(NULL, pages * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return t_fail("mmap");
	madvise(mem, pages * PAGE_SZ, MADV_NOHUGEPAGE);
	for (i = 0, pages = 0; i < nbufs; i++) {
		size_t len = (i % 16 ? 1 : 4) * PAGE_SZ;
		char *b = mem + pages * PAGE_SZ;

		pages += len / PAGE_SZ;
		if (i % 7 == 3)
			continue;
		memset(b, (int)(i * 37), len);
		memcpy(b, &i, sizeof(i));
		iov[i] = (struct iovec){ b, len };
		sum_addr += (unsigned long)b;
		sum_len += len;
		crc = crc32(crc, (const void *)b, len);
		used++;
	}
	for (i = 0; i < 3; i++) {
		fds[i] = open(paths[i], O_RDWR);
		if (fds[i] < 0)
			return t_fail("open");
	}
	for (i = 0; i < nfiles; i++) {
		table[i] = i % 3 == 1 ? -1 : fds[i % 3 == 2 ? 2 : (i / 3) % 2];
		if (table[i] >= 0) {
			used_files++;
			per_path[table[i] == fds[0] ? 0 : table[i] == fds[1] ? 1 : 2]++;
		}
	}
	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_buffers(&ring, iov, nbufs);
	if (ret) {
		t_diag("io_uring_register_buffers(%ld): %s", nbufs, strerror(-ret));
		return t_fail("register buffers");
	}
	if (nfiles) {
		ret = io_uring_register_files(&ring, table, nfiles);
		if (ret) {
			t_diag("io_uring_register_files(%ld): %s", nfiles, strerror(-ret));
			return t_fail("register files");
		}
	}
	expect_ring("many", &ring, &p);
	expect("bufs", "slots=%ld used=%lu sum_addr=%lu sum_len=%lu crc32=%u", nbufs, used,
	       sum_addr, sum_len, crc);
	expect("files", "slots=%ld used=%lu null=%ld zero=%ld full=%ld", nfiles, used_files,
	       per_path[0], per_path[1], per_path[2]);
	if (owner_wait())
		return t_fail("no go");
	return run_nops(&ring, 2, 1) ? t_fail("NOPs after the dump") : t_pass();
}
