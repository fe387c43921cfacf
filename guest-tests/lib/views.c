// SPDX-License-Identifier: GPL-2.0
/*
 * Independent views of a ring's registrations (views.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "guest.h"

static int pagemap_fd = -1, kpageflags_fd = -1;

int open_page_views(void)
{
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0 || kpageflags_fd < 0) {
		t_diag("open pagemap/kpageflags: %s", strerror(errno));
		return -1;
	}
	return 0;
}

uint64_t page_pfn(unsigned long addr)
{
	uint64_t ent = 0;

	if (pread(pagemap_fd, &ent, sizeof(ent),
		  addr / PAGE_SZ * sizeof(ent)) != sizeof(ent))
		return 0;
	/* bit 63 present, bits 0-54 the PFN (zero unless CAP_SYS_ADMIN) */
	return ent & (1ULL << 63) ? ent & ((1ULL << 55) - 1) : 0;
}

uint64_t page_flags(uint64_t pfn)
{
	uint64_t flags = 0;

	if (kpageflags_fd < 0 ||
	    pread(kpageflags_fd, &flags, sizeof(flags),
		  pfn * sizeof(flags)) != sizeof(flags))
		return 0;
	return flags;
}

long vmpin_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

void print_ring(const char *name, struct io_uring *ring,
		const struct io_uring_params *p)
{
	struct stat st;

	fstat(ring->ring_fd, &st);
	printf("ring name=%s fd=%d ino=%lu sq_entries=%u cq_entries=%u flags=%x\n",
	       name, ring->ring_fd, (unsigned long)st.st_ino, p->sq_entries,
	       p->cq_entries, p->flags);
}

void print_fdinfo(int fd)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f) {
		printf("fdinfo error=%d\n", errno);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		printf("fdinfo %s\n", line);
	}
	fclose(f);
}

static void print_pages(int slot, const struct iovec *iov)
{
	unsigned long a = (unsigned long)iov->iov_base & ~(PAGE_SZ - 1);
	unsigned long end = (unsigned long)iov->iov_base + iov->iov_len;

	for (; a < end; a += PAGE_SZ) {
		uint64_t pfn = page_pfn(a);

		printf("page slot=%d addr=%lx pfn=%" PRIx64 " kpf=%" PRIx64 "\n",
		       slot, a, pfn, page_flags(pfn));
	}
}

void print_regbufs(const struct iovec *iov, int nr)
{
	int i;

	printf("table kind=buf slots=%d\n", nr);
	for (i = 0; i < nr; i++) {
		if (!iov[i].iov_base) {
			printf("regbuf slot=%d empty\n", i);
			continue;
		}
		printf("regbuf slot=%d addr=%lx len=%zu\n", i,
		       (unsigned long)iov[i].iov_base, iov[i].iov_len);
		print_pages(i, &iov[i]);
	}
}

int decoy_ring(struct io_uring *ring, void *mem)
{
	struct io_uring_params p;
	struct iovec iov = { .iov_base = mem, .iov_len = 3 * PAGE_SZ };
	int fd, ret;

	if (ring_init(ring, &p, 4, 0, 0, 0))
		return -1;
	print_ring("decoy", ring, &p);
	ret = io_uring_register_buffers(ring, &iov, 1);
	if (ret) {
		t_diag("decoy register buffers: %s", strerror(-ret));
		return -1;
	}
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ret = io_uring_register_files(ring, &fd, 1);
	close(fd);
	if (ret) {
		t_diag("decoy register files: %s", strerror(-ret));
		return -1;
	}
	return 0;
}
