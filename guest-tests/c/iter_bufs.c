// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the io_uring_reg_buf iterator over a sparse table of small-page
 * buffers. Registers 8 slots (3 empty, 1 byte to 64K, mid-page starts and
 * ends, two slots sharing a page) next to a decoy ring, prints what it
 * registered with each page's PFN and kpageflags, VmPin before and after,
 * the ring's fdinfo, and the walks: whole, in 7-byte reads, of the empty
 * file table, and after munmap() of the buffers' memory (the pages stay
 * pinned). test_uring_iter.py::test_buffer_iterator_small_pages checks
 * every field.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

#define NR_SLOTS	8

static enum t_exit test_bufs(void)
{
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct iovec iov[NR_SLOTS] = {};
	struct bpf_link *buf_link, *file_link;
	size_t map_len = 32 * PAGE_SZ;
	long pin_before, pin_after;
	char *mem, *decoy_mem;
	int ret;

	mem = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	decoy_mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || decoy_mem == MAP_FAILED)
		return t_fail("mmap");
	/* small pages only: the expected bvec layout is one per page */
	madvise(mem, map_len, MADV_NOHUGEPAGE);
	memset(mem, 0x5a, map_len);
	memset(decoy_mem, 0xa5, 4 * PAGE_SZ);

	/*
	 * Slots 1, 5 and 7 empty; sizes from one byte to 64K; slot 2 starts
	 * mid-page and ends mid-page; slot 6 shares page 0 with slot 0.
	 */
	iov[0] = (struct iovec){ mem, PAGE_SZ };
	iov[2] = (struct iovec){ mem + 2 * PAGE_SZ + 100, 3 * PAGE_SZ + 200 };
	iov[3] = (struct iovec){ mem + 7 * PAGE_SZ + PAGE_SZ - 1, 1 };
	iov[4] = (struct iovec){ mem + 8 * PAGE_SZ, 16 * PAGE_SZ };
	iov[6] = (struct iovec){ mem + 10, 100 };

	if (ring_init(&ring, &p, 16, 64, 0, 0) || decoy_ring(&decoy, decoy_mem))
		return t_fail("ring setup");
	print_ring("main", &ring, &p);

	pin_before = vmpin_kb();
	ret = io_uring_register_buffers(&ring, iov, NR_SLOTS);
	pin_after = vmpin_kb();
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	printf("vmpin before_kb=%ld after_kb=%ld\n", pin_before, pin_after);
	print_regbufs(iov, NR_SLOTS);
	print_fdinfo(ring.ring_fd);

	buf_link = iter_attach(IT_BUF, ring.ring_fd);
	file_link = iter_attach(IT_FILE, ring.ring_fd);
	if (!buf_link || !file_link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk buf whole");
	if (iter_dump(buf_link, "buf", ITER_WHOLE))
		return t_fail("walk buf");
	iter_print_counters("buf");
	step("walk buf 7-byte reads");
	if (iter_dump(buf_link, "buf-chunked", 7))
		return t_fail("walk buf-chunked");
	iter_print_counters("buf-chunked");
	/* an empty file table: only the final call */
	step("walk file");
	if (iter_dump(file_link, "file", ITER_WHOLE))
		return t_fail("walk file");
	iter_print_counters("file");

	/* the pages stay pinned and described after the mapping is gone */
	munmap(mem, map_len);
	printf("unmapped addr=%lx len=%zu\n", (unsigned long)mem, map_len);
	step("walk buf after munmap");
	if (iter_dump(buf_link, "buf-unmapped", ITER_WHOLE))
		return t_fail("walk buf-unmapped");
	iter_print_counters("buf-unmapped");

	bpf_link__destroy(buf_link);
	bpf_link__destroy(file_link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_bufs", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	if (open_page_views())
		ret = t_fail("cannot open pagemap (needs root)");
	else
		ret = test_bufs();
	iter_unload();
	return ret;
}
