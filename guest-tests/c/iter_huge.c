// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the io_uring_reg_buf iterator over buffers backed by two 2M
 * folios, THP or hugetlb (argv[1]: thp|hugetlb). Slot 0 runs from page 3
 * of the first folio into the second (io_uring coalesces it: one bvec per
 * folio), slot 1 is 50 bytes of the first folio's first page (a single
 * page is never coalesced), slot 2 is empty. Prints the registration with
 * PFNs and kpageflags, VmPin, fdinfo, and the walk before and after
 * munmap(). Skips when THP is refused or not given; fails when the
 * hugetlb pages the test reserved cannot be had.
 * test_uring_iter.py::test_buffer_iterator_huge checks every field.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

#define NR_SLOTS	3

/* 2 * HPAGE_SZ of huge pages at *@hp, aligned; the whole mapping in *@map, *@len */
static enum t_exit map_huge(const char *kind, char **map, size_t *len, char **hp,
			    uint64_t *bit)
{
	if (!strcmp(kind, "thp")) {
		/* align by hand: 2M more than needed */
		*len = 3 * HPAGE_SZ;
		*map = mmap(NULL, *len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (*map == MAP_FAILED)
			return t_fail("mmap");
		*hp = (char *)(((unsigned long)*map + HPAGE_SZ - 1) & ~(HPAGE_SZ - 1));
		if (madvise(*hp, 2 * HPAGE_SZ, MADV_HUGEPAGE)) {
			t_diag("madvise(MADV_HUGEPAGE): %s", strerror(errno));
			return t_skip("madvise(MADV_HUGEPAGE) refused");
		}
		*bit = 1ULL << KPF_THP;
		return T_EXIT_PASS;
	}
	if (!strcmp(kind, "hugetlb")) {
		*len = 2 * HPAGE_SZ;
		*map = mmap(NULL, *len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			    (21 << MAP_HUGE_SHIFT), -1, 0);
		if (*map == MAP_FAILED) {
			t_diag("mmap(MAP_HUGETLB): %s", strerror(errno));
			return t_fail("no 2M hugetlb pages although the test reserved them");
		}
		*hp = *map;
		*bit = 1ULL << KPF_HUGE;
		return T_EXIT_PASS;
	}
	return t_fail("usage: iter_huge thp|hugetlb");
}

static enum t_exit test_huge(const char *kind)
{
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct iovec iov[NR_SLOTS] = {};
	struct bpf_link *link;
	long pin_before, pin_after;
	size_t map_len = 0;
	char *map = NULL, *hp = NULL, *decoy_mem;
	uint64_t f0, f1, bit = 0;
	enum t_exit res;
	int ret;

	decoy_mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (decoy_mem == MAP_FAILED)
		return t_fail("mmap");
	memset(decoy_mem, 0xa5, 4 * PAGE_SZ);

	res = map_huge(kind, &map, &map_len, &hp, &bit);
	if (res != T_EXIT_PASS)
		return res;
	memset(hp, 0x5a, 2 * HPAGE_SZ);
	f0 = page_flags(page_pfn((unsigned long)hp));
	f1 = page_flags(page_pfn((unsigned long)hp + HPAGE_SZ));
	printf("hugepages kind=%s addr=%lx kpf0=%" PRIx64 " kpf1=%" PRIx64 "\n",
	       kind, (unsigned long)hp, f0, f1);
	if (!(f0 & f1 & bit)) {
		if (!strcmp(kind, "thp"))
			return t_skip("the kernel did not back the region with 2M THP folios");
		return t_fail("MAP_HUGETLB pages without KPF_HUGE in /proc/kpageflags");
	}

	iov[0] = (struct iovec){ hp + 3 * PAGE_SZ + 17,
				 HPAGE_SZ - 3 * PAGE_SZ - 17 + 5 * PAGE_SZ + 300 };
	iov[1] = (struct iovec){ hp + 100, 50 };

	if (ring_init(&ring, &p, 8, 0, 0, 0) || decoy_ring(&decoy, decoy_mem))
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

	link = iter_attach(IT_BUF, ring.ring_fd);
	if (!link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk buf");
	if (iter_dump(link, "buf", ITER_WHOLE))
		return t_fail("walk buf");
	iter_print_counters("buf");
	munmap(map, map_len);
	printf("unmapped addr=%lx len=%zu\n", (unsigned long)map, map_len);
	step("walk buf after munmap");
	if (iter_dump(link, "buf-unmapped", ITER_WHOLE))
		return t_fail("walk buf-unmapped");
	iter_print_counters("buf-unmapped");

	bpf_link__destroy(link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_huge", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	if (open_page_views())
		ret = t_fail("cannot open pagemap (needs root)");
	else
		ret = test_huge(argc > 1 ? argv[1] : "");
	iter_unload();
	return ret;
}
