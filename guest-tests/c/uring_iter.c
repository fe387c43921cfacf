// SPDX-License-Identifier: GPL-2.0
/*
 * Description: sets up io_uring rings with known registered buffers and
 * files, attaches the series' io_uring_buf / io_uring_file iterators
 * (bpf/uring_iter.bpf.c) to them and reads them. It prints what it
 * registered, what independent views say (/proc/self/pagemap,
 * /proc/kpageflags, fstat, fcntl, VmPin, the ring's fdinfo) and the
 * iterator output, one record per line; test_uring_iter.py does the
 * checking. The last line is a KTAP result: "ok 1 <mode>", "not ok 1 <mode>
 * # reason" (setup failed), or "ok 1 <mode> # SKIP reason" with exit 77.
 *
 *   uring_iter bufs              sparse table of small-page buffers
 *   uring_iter huge thp|hugetlb  buffers over two 2M folios
 *   uring_iter files             sparse file table and a direct descriptor
 *   uring_iter edeadlk           reads of the iterators through io_uring
 *   uring_iter attach            attach with missing/bad/non-ring fds
 *   uring_iter pin PATH          pin a buffer iterator link on a ring and exit
 *
 * Record lines are "<kind> key=value ..."; iterator lines are copied as
 * "iter <walk> <line>". "step ..." lines say what comes next, so that a
 * hang can be located from the output.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "iter_helpers.h"
#include "uring_iter.skel.h"

#define PAGE_SZ		4096UL
#define HPAGE_SZ	(2UL << 20)
#define OUT_MAX		(256 * 1024)
/* include/uapi/linux/kernel-page-flags.h */
#define KPF_HUGE	17
#define KPF_THP		22

#ifndef HAVE_IO_URING_ITER_UAPI

int main(int argc, char *argv[])
{
	return t_skip_no_uapi(argc, argv, "uring_iter");
}

#else

static char out[OUT_MAX];

/* ------------------------------------------------------------------ */
/* iterators                                                           */

/* One walk of a link's iterator, printed as "iter <walk> <line>". */
static int walk(struct bpf_link *link, const char *name, size_t chunk)
{
	char *line, *save = NULL;
	long len;
	int fd;

	fd = iter_open(link, false);
	if (fd < 0) {
		t_diag("bpf_iter_create: %s", strerror(errno));
		return -1;
	}
	len = read_walk(fd, out, sizeof(out), chunk, 0, NULL);
	close(fd);
	if (len < 0) {
		printf("walk %s error=%ld\n", name, -len);
		return -1;
	}
	printf("walk %s bytes=%ld chunk=%zu\n", name, len, chunk);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("iter %s %s\n", name, line);
	return 0;
}

static void print_counters(struct uring_iter *skel, const char *when)
{
	printf("counters when=%s buf_objects=%llu buf_stops=%llu file_objects=%llu file_stops=%llu\n",
	       when, (unsigned long long)skel->bss->buf_objects,
	       (unsigned long long)skel->bss->buf_stops,
	       (unsigned long long)skel->bss->file_objects,
	       (unsigned long long)skel->bss->file_stops);
}

static struct uring_iter *load_skel(void)
{
	struct uring_iter *skel = uring_iter__open_and_load();

	if (!skel)
		t_diag("uring_iter__open_and_load: %s", strerror(errno));
	return skel;
}

/* ------------------------------------------------------------------ */
/* independent views                                                   */

static long vmpin_kb(void)
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

static int pagemap_fd = -1, kpageflags_fd = -1;

static uint64_t page_pfn(unsigned long addr)
{
	uint64_t ent = 0;

	if (pread(pagemap_fd, &ent, sizeof(ent),
		  addr / PAGE_SZ * sizeof(ent)) != sizeof(ent))
		return 0;
	/* bit 63 present, bits 0-54 the PFN (zero unless CAP_SYS_ADMIN) */
	return ent & (1ULL << 63) ? ent & ((1ULL << 55) - 1) : 0;
}

static uint64_t page_flags(uint64_t pfn)
{
	uint64_t flags = 0;

	if (kpageflags_fd < 0 ||
	    pread(kpageflags_fd, &flags, sizeof(flags),
		  pfn * sizeof(flags)) != sizeof(flags))
		return 0;
	return flags;
}

static int open_page_views(void)
{
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0 || kpageflags_fd < 0) {
		t_diag("open pagemap/kpageflags: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* "page slot=.. addr=.. pfn=.. kpf=.." for every page under a buffer */
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

static void print_fdinfo(int fd)
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

static void print_ring(const char *name, struct io_uring *ring,
		       const struct io_uring_params *p)
{
	struct stat st;

	fstat(ring->ring_fd, &st);
	printf("ring name=%s fd=%d ino=%lu sq_entries=%u cq_entries=%u flags=%x\n",
	       name, ring->ring_fd, (unsigned long)st.st_ino, p->sq_entries,
	       p->cq_entries, p->flags);
}

/* A second ring with other things registered: the iterators must not show them. */
static int decoy_ring(struct io_uring *ring, void *mem)
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

/* ------------------------------------------------------------------ */
/* bufs: small pages                                                   */

#define NR_BUF_SLOTS 8

static enum t_exit mode_bufs(struct uring_iter *skel)
{
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct iovec iov[NR_BUF_SLOTS] = {};
	struct bpf_link *buf_link, *file_link;
	size_t map_len = 32 * PAGE_SZ;
	long pin_before, pin_after;
	char *mem, *decoy_mem;
	int i, ret;

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
	ret = io_uring_register_buffers(&ring, iov, NR_BUF_SLOTS);
	pin_after = vmpin_kb();
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	printf("vmpin before_kb=%ld after_kb=%ld\n", pin_before, pin_after);
	printf("table kind=buf slots=%d\n", NR_BUF_SLOTS);
	for (i = 0; i < NR_BUF_SLOTS; i++) {
		if (!iov[i].iov_base) {
			printf("regbuf slot=%d empty\n", i);
			continue;
		}
		printf("regbuf slot=%d addr=%lx len=%zu\n", i,
		       (unsigned long)iov[i].iov_base, iov[i].iov_len);
		print_pages(i, &iov[i]);
	}
	print_fdinfo(ring.ring_fd);

	buf_link = attach_ring(skel->progs.dump_buf, ring.ring_fd);
	file_link = attach_ring(skel->progs.dump_file, ring.ring_fd);
	if (!buf_link || !file_link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk buf whole");
	if (walk(buf_link, "buf", sizeof(out) / 2))
		return t_fail("walk buf");
	print_counters(skel, "buf");
	step("walk buf 7-byte reads");
	if (walk(buf_link, "buf-chunked", 7))
		return t_fail("walk buf-chunked");
	print_counters(skel, "buf-chunked");
	/* an empty file table: only the final call */
	step("walk file");
	if (walk(file_link, "file", sizeof(out) / 2))
		return t_fail("walk file");
	print_counters(skel, "file");

	/* the pages stay pinned and described after the mapping is gone */
	munmap(mem, map_len);
	printf("unmapped addr=%lx len=%zu\n", (unsigned long)mem, map_len);
	step("walk buf after munmap");
	if (walk(buf_link, "buf-unmapped", sizeof(out) / 2))
		return t_fail("walk buf-unmapped");
	print_counters(skel, "buf-unmapped");

	bpf_link__destroy(buf_link);
	bpf_link__destroy(file_link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* huge: two 2M folios                                                 */

static enum t_exit mode_huge(struct uring_iter *skel, const char *kind)
{
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct iovec iov[3] = {};
	struct bpf_link *link;
	long pin_before, pin_after;
	size_t map_len;
	char *map, *hp, *decoy_mem;
	uint64_t f0, f1, bit;
	int i, ret;

	decoy_mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (decoy_mem == MAP_FAILED)
		return t_fail("mmap");
	memset(decoy_mem, 0xa5, 4 * PAGE_SZ);

	if (!strcmp(kind, "thp")) {
		/* align by hand: 2M more than needed */
		map_len = 3 * HPAGE_SZ;
		map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED)
			return t_fail("mmap");
		hp = (char *)(((unsigned long)map + HPAGE_SZ - 1) & ~(HPAGE_SZ - 1));
		if (madvise(hp, 2 * HPAGE_SZ, MADV_HUGEPAGE)) {
			t_diag("madvise(MADV_HUGEPAGE): %s", strerror(errno));
			return t_skip("madvise(MADV_HUGEPAGE) refused");
		}
		bit = 1ULL << KPF_THP;
	} else if (!strcmp(kind, "hugetlb")) {
		map_len = 2 * HPAGE_SZ;
		map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			   (21 << MAP_HUGE_SHIFT), -1, 0);
		if (map == MAP_FAILED) {
			t_diag("mmap(MAP_HUGETLB): %s", strerror(errno));
			return t_fail("no 2M hugetlb pages although the test reserved them");
		}
		hp = map;
		bit = 1ULL << KPF_HUGE;
	} else {
		return t_fail("huge: thp or hugetlb");
	}
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

	/*
	 * Slot 0 runs from page 3 of the first folio (plus 17 bytes) into
	 * page 5 of the second: coalesced into one bvec per folio. Slot 1 is
	 * 50 bytes inside the first folio's first page: a single page is
	 * never coalesced. Slot 2 is empty.
	 */
	iov[0] = (struct iovec){ hp + 3 * PAGE_SZ + 17,
				 HPAGE_SZ - 3 * PAGE_SZ - 17 + 5 * PAGE_SZ + 300 };
	iov[1] = (struct iovec){ hp + 100, 50 };

	if (ring_init(&ring, &p, 8, 0, 0, 0) || decoy_ring(&decoy, decoy_mem))
		return t_fail("ring setup");
	print_ring("main", &ring, &p);
	pin_before = vmpin_kb();
	ret = io_uring_register_buffers(&ring, iov, 3);
	pin_after = vmpin_kb();
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	printf("vmpin before_kb=%ld after_kb=%ld\n", pin_before, pin_after);
	printf("table kind=buf slots=3\n");
	for (i = 0; i < 3; i++) {
		if (!iov[i].iov_base) {
			printf("regbuf slot=%d empty\n", i);
			continue;
		}
		printf("regbuf slot=%d addr=%lx len=%zu\n", i,
		       (unsigned long)iov[i].iov_base, iov[i].iov_len);
		print_pages(i, &iov[i]);
	}
	print_fdinfo(ring.ring_fd);

	link = attach_ring(skel->progs.dump_buf, ring.ring_fd);
	if (!link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk buf");
	if (walk(link, "buf", sizeof(out) / 2))
		return t_fail("walk buf");
	print_counters(skel, "buf");
	munmap(map, map_len);
	printf("unmapped addr=%lx len=%zu\n", (unsigned long)map, map_len);
	step("walk buf after munmap");
	if (walk(link, "buf-unmapped", sizeof(out) / 2))
		return t_fail("walk buf-unmapped");
	print_counters(skel, "buf-unmapped");

	bpf_link__destroy(link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* files                                                               */

#define NR_FILE_SLOTS	12
#define DIRECT_SLOT	9
#define DIRECT_READ	5

static char tmpdir[] = "/tmp/uring_iter.XXXXXX";

static void print_file(int slot, const char *kind, int fd, const char *path)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	off_t pos = lseek(fd, 0, SEEK_CUR);

	if (fstat(fd, &st)) {
		printf("regfile slot=%d kind=%s fstat_error=%d\n", slot, kind, errno);
		return;
	}
	/* pipes and sockets cannot seek: their f_pos stays 0 */
	if (pos < 0)
		pos = 0;
	printf("regfile slot=%d kind=%s fd=%d ino=%lu dev_major=%u dev_minor=%u rdev_major=%u rdev_minor=%u mode=%o f_flags=%x pos=%lld",
	       slot, kind, fd, (unsigned long)st.st_ino, major(st.st_dev),
	       minor(st.st_dev), major(st.st_rdev), minor(st.st_rdev),
	       st.st_mode, fl, (long long)pos);
	printf(" name=%s\n", path ? strrchr(path, '/') + 1 : "");
}

static int make_file(const char *name, char *path, size_t size, int flags,
		     off_t pos)
{
	static const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	int fd, i;

	snprintf(path, size, "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	for (i = 0; i < 10; i++)
		if (write(fd, text, sizeof(text) - 1) != sizeof(text) - 1)
			return -1;
	close(fd);
	fd = open(path, flags | O_CLOEXEC);
	if (fd >= 0 && pos && lseek(fd, pos, SEEK_SET) != pos)
		return -1;
	return fd;
}

/* Inode numbers of every fd of this task, to show the direct one has none. */
static void print_task_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	struct stat st;

	if (!d) {
		printf("taskfd error=%d\n", errno);
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (!fstat(fd, &st))
			printf("taskfd fd=%d ino=%lu dev_major=%u dev_minor=%u\n",
			       fd, (unsigned long)st.st_ino, major(st.st_dev),
			       minor(st.st_dev));
	}
	closedir(d);
}

static int submit_wait(struct io_uring *ring, int *res)
{
	struct __kernel_timespec ts = { .tv_sec = 20 };
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit(ring);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (ret)
		return ret;
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

static enum t_exit mode_files(struct uring_iter *skel)
{
	char path_a[256], path_b[256], path_c[256], rbuf[64];
	int fds[NR_FILE_SLOTS], pfd[2], sk[2], fd_a, fd_b, fd_c, fd_udp, fd_null;
	struct io_uring ring, decoy;
	struct io_uring_params p;
	struct io_uring_sqe *sqe;
	struct bpf_link *buf_link, *file_link;
	char *decoy_mem;
	int i, ret, res;

	if (!mkdtemp(tmpdir))
		return t_fail("mkdtemp");
	/*
	 * The files go on a tmpfs of our own: the guest's /tmp is overlayfs,
	 * whose stat() reports the device of the layer below rather than
	 * i_sb->s_dev, so fstat() would not be a view of what the kernel
	 * keeps. A private mount namespace keeps the mount from leaking.
	 */
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("uring_iter", tmpdir, "tmpfs", 0, "size=1m,mode=0700")) {
		t_diag("tmpfs on %s: %s", tmpdir, strerror(errno));
		return t_fail("cannot mount a tmpfs for the test files (needs root)");
	}
	decoy_mem = mmap(NULL, 4 * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (decoy_mem == MAP_FAILED)
		return t_fail("mmap");
	memset(decoy_mem, 0xa5, 4 * PAGE_SZ);

	fd_a = make_file("file_a", path_a, sizeof(path_a), O_RDWR, 123);
	fd_b = make_file("file_b", path_b, sizeof(path_b), O_WRONLY | O_APPEND, 7);
	fd_c = make_file("file_c", path_c, sizeof(path_c), O_RDONLY, 0);
	fd_null = open("/dev/null", O_RDWR | O_CLOEXEC);
	fd_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd_a < 0 || fd_b < 0 || fd_c < 0 || fd_null < 0 || fd_udp < 0 ||
	    pipe2(pfd, O_NONBLOCK | O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk))
		return t_fail("open files");
	close(fd_c);	/* file_c is only ever opened as a direct descriptor */

	for (i = 0; i < NR_FILE_SLOTS; i++)
		fds[i] = -1;
	fds[0] = fd_a;
	fds[2] = fd_b;
	fds[3] = pfd[0];
	fds[4] = pfd[1];
	fds[6] = sk[0];
	fds[7] = fd_udp;
	fds[8] = fd_a;		/* the same struct file in two slots */
	fds[10] = fd_null;

	print_file(0, "regular", fd_a, path_a);
	print_file(2, "regular", fd_b, path_b);
	print_file(3, "pipe", pfd[0], NULL);
	print_file(4, "pipe", pfd[1], NULL);
	print_file(6, "unix", sk[0], NULL);
	print_file(7, "udp", fd_udp, NULL);
	print_file(8, "regular", fd_a, path_a);
	print_file(10, "chardev", fd_null, "/dev/null");

	if (ring_init(&ring, &p, 16, 64, 0, 0) || decoy_ring(&decoy, decoy_mem))
		return t_fail("ring setup");
	print_ring("main", &ring, &p);
	ret = io_uring_register_files(&ring, fds, NR_FILE_SLOTS);
	if (ret) {
		t_diag("io_uring_register_files: %s", strerror(-ret));
		return t_fail("register files");
	}
	/* the table holds the only references from now on */
	close(fd_a);
	close(fd_b);
	close(pfd[0]);
	close(pfd[1]);
	close(sk[0]);
	close(sk[1]);
	close(fd_udp);
	close(fd_null);

	/* a direct descriptor: opened into slot DIRECT_SLOT, no fd ever */
	step("openat direct");
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_openat_direct(sqe, AT_FDCWD, path_c, O_RDONLY, 0,
				    DIRECT_SLOT);
	ret = submit_wait(&ring, &res);
	if (ret || res) {
		t_diag("openat direct: ret %d res %d", ret, res);
		return t_fail("openat direct");
	}
	step("read direct");
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, DIRECT_SLOT, rbuf, DIRECT_READ, -1);
	sqe->flags |= IOSQE_FIXED_FILE;
	ret = submit_wait(&ring, &res);
	if (ret || res != DIRECT_READ) {
		t_diag("read direct: ret %d res %d", ret, res);
		return t_fail("read from the direct descriptor");
	}
	{
		/* what an ordinary open of the same file with the same flags gives */
		struct stat st;
		int ref = open(path_c, O_RDONLY);

		if (ref < 0 || fstat(ref, &st))
			return t_fail("reference open");
		printf("regfile slot=%d kind=direct fd=-1 ino=%lu dev_major=%u dev_minor=%u rdev_major=%u rdev_minor=%u mode=%o f_flags=%x pos=%d name=%s\n",
		       DIRECT_SLOT, (unsigned long)st.st_ino, major(st.st_dev),
		       minor(st.st_dev), major(st.st_rdev), minor(st.st_rdev),
		       st.st_mode, fcntl(ref, F_GETFL), DIRECT_READ,
		       strrchr(path_c, '/') + 1);
		close(ref);
	}
	printf("table kind=file slots=%d\n", NR_FILE_SLOTS);
	for (i = 0; i < NR_FILE_SLOTS; i++)
		if (fds[i] < 0 && i != DIRECT_SLOT)
			printf("regfile slot=%d empty\n", i);
	print_task_fds();
	print_fdinfo(ring.ring_fd);

	buf_link = attach_ring(skel->progs.dump_buf, ring.ring_fd);
	file_link = attach_ring(skel->progs.dump_file, ring.ring_fd);
	if (!buf_link || !file_link) {
		t_diag("attach: %s", strerror(errno));
		return t_fail("attach");
	}
	step("walk file whole");
	if (walk(file_link, "file", sizeof(out) / 2))
		return t_fail("walk file");
	print_counters(skel, "file");
	step("walk file 7-byte reads");
	if (walk(file_link, "file-chunked", 7))
		return t_fail("walk file-chunked");
	print_counters(skel, "file-chunked");
	/* an empty buffer table: only the final call */
	step("walk buf");
	if (walk(buf_link, "buf", sizeof(out) / 2))
		return t_fail("walk buf");
	print_counters(skel, "buf");

	bpf_link__destroy(buf_link);
	bpf_link__destroy(file_link);
	io_uring_queue_exit(&decoy);
	io_uring_queue_exit(&ring);
	umount2(tmpdir, MNT_DETACH);
	rmdir(tmpdir);
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* edeadlk: the iterators read through io_uring                        */

#define BUSY_RETRIES	100

/*
 * IORING_OP_READ of @iter_fd on @ring until EOF into @buf. Returns 0 with
 * the text in @buf, or the first negative CQE res; *@busy counts -EDEADLK
 * results retried when @retry_busy.
 */
static int ring_read_all(struct io_uring *ring, int iter_fd, char *buf,
			 size_t size, bool retry_busy, int *busy, int *first_res)
{
	size_t len = 0;
	bool first = true;

	for (;;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		int ret, res;

		if (!sqe || len + 1 >= size)
			return -E2BIG;
		io_uring_prep_read(sqe, iter_fd, buf + len, size - len - 1, 0);
		ret = submit_wait(ring, &res);
		if (ret) {
			/* -ETIME: no completion within the timeout */
			printf("cqe_wait error=%d\n", -ret);
			return ret == -ETIME ? -ETIME : -EIO;
		}
		if (first)
			*first_res = res;
		first = false;
		if (res == -EDEADLK && retry_busy && *busy < BUSY_RETRIES) {
			++*busy;
			continue;
		}
		if (res < 0)
			return res;
		if (!res)
			break;
		len += res;
	}
	buf[len] = '\0';
	return 0;
}

/* The whole walk by read(2), what every successful ring read must equal. */
static int reference_walk(struct bpf_link *link, char *buf, size_t size)
{
	int fd = iter_open(link, false);
	long len;

	if (fd < 0)
		return -1;
	len = read_walk(fd, buf, size, size / 2, 0, NULL);
	close(fd);
	return len > 0 ? 0 : -1;
}

static char ref_text[OUT_MAX / 4], got_text[OUT_MAX / 4];

/*
 * One case: read a fresh iterator fd of @link through @ring. Prints
 * "case name=.. iter=.. ring=.. nonblock=.. res=<first CQE res> busy=..
 * status=<final status> same=<0|1>".
 */
static int read_case(const char *name, const char *it, struct bpf_link *link,
		     const char *ring_name, struct io_uring *ring,
		     bool nonblock, bool retry_busy)
{
	int fd, busy = 0, first_res = 0, status;
	char what[128];

	fd = iter_open(link, nonblock);
	if (fd < 0)
		return -1;
	snprintf(what, sizeof(what), "%s iter=%s ring=%s nonblock=%d", name, it,
		 ring_name, nonblock);
	step(what);
	status = ring_read_all(ring, fd, got_text, sizeof(got_text), retry_busy,
			       &busy, &first_res);
	printf("case name=%s iter=%s ring=%s nonblock=%d res=%d busy=%d status=%d same=%d\n",
	       name, it, ring_name, nonblock, first_res, busy, status,
	       !status && !strcmp(got_text, ref_text));
	if (!strcmp(name, "self-inline")) {
		/* the failed reads must not have moved the position */
		int second = 0, dummy = 0;

		status = ring_read_all(ring, fd, got_text, sizeof(got_text),
				       false, &dummy, &second);
		printf("case name=self-inline-again iter=%s ring=%s nonblock=1 res=%d busy=0 status=%d same=0\n",
		       it, ring_name, second, status);
		step("read(2) after -EDEADLK");
		status = read_walk(fd, got_text, sizeof(got_text), 4096, 0, NULL) > 0 ? 0 : -1;
		printf("case name=read-after-edeadlk iter=%s ring=none nonblock=1 res=0 busy=0 status=%d same=%d\n",
		       it, status, !status && !strcmp(got_text, ref_text));
	}
	close(fd);
	return 0;
}

static enum t_exit mode_edeadlk(struct uring_iter *skel)
{
	struct io_uring a, b, sq;
	struct io_uring_params pa, pb, psq;
	struct iovec iov;
	struct bpf_link *links[3][2];
	struct io_uring *rings[3] = { &a, &b, &sq };
	const char *it_names[2] = { "buf", "file" };
	char *mem;
	int r, k, fd;

	mem = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return t_fail("mmap");
	memset(mem, 1, 2 * PAGE_SZ);
	iov = (struct iovec){ mem, 2 * PAGE_SZ };

	if (ring_init(&a, &pa, 8, 0, 0, 0) || ring_init(&b, &pb, 8, 0, 0, 0))
		return t_fail("ring setup");
	if (ring_init(&sq, &psq, 8, 0, IORING_SETUP_SQPOLL, 0)) {
		return t_fail("SQPOLL ring setup");
	}
	print_ring("a", &a, &pa);
	print_ring("b", &b, &pb);
	print_ring("sqpoll", &sq, &psq);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (r = 0; r < 3; r++) {
		if (io_uring_register_buffers(rings[r], &iov, 1) ||
		    io_uring_register_files(rings[r], &fd, 1))
			return t_fail("register");
		for (k = 0; k < 2; k++) {
			links[r][k] = attach_ring(k ? skel->progs.dump_file :
						      skel->progs.dump_buf,
						  rings[r]->ring_fd);
			if (!links[r][k])
				return t_fail("attach");
		}
	}
	close(fd);

	for (k = 0; k < 2; k++) {
		/* ring a's iterators, read every way there is */
		if (reference_walk(links[0][k], ref_text, sizeof(ref_text)))
			return t_fail("reference read(2)");
		printf("reference iter=%s bytes=%zu\n", it_names[k],
		       strlen(ref_text));
		/* inline, under a's uring_lock: must not take it again */
		if (read_case("self-inline", it_names[k], links[0][k], "a", &a,
			      true, false) ||
		    /* inline under b's lock: a's is free */
		    read_case("other-inline", it_names[k], links[0][k], "b", &b,
			      true, false) ||
		    /* io-wq, no uring_lock held: succeeds, maybe after "busy" */
		    read_case("self-iowq", it_names[k], links[0][k], "a", &a,
			      false, true))
			return t_fail("iterator fd");

		/* SQPOLL: its thread issues under the ring's uring_lock */
		if (reference_walk(links[2][k], ref_text, sizeof(ref_text)))
			return t_fail("reference read(2)");
		if (read_case("sqpoll-inline", it_names[k], links[2][k],
			      "sqpoll", &sq, true, false) ||
		    read_case("sqpoll-iowq", it_names[k], links[2][k],
			      "sqpoll", &sq, false, true))
			return t_fail("iterator fd");
	}
	print_counters(skel, "end");

	for (r = 0; r < 3; r++) {
		bpf_link__destroy(links[r][0]);
		bpf_link__destroy(links[r][1]);
		io_uring_queue_exit(rings[r]);
	}
	return t_pass();
}

/* ------------------------------------------------------------------ */
/* attach: fds that are not a ring                                     */

static void attach_case(struct uring_iter *skel, const char *name, int fd,
			bool no_link_info)
{
	struct bpf_program *progs[2] = { skel->progs.dump_buf,
					 skel->progs.dump_file };
	const char *it_names[2] = { "buf", "file" };
	int k;

	for (k = 0; k < 2; k++) {
		struct bpf_link *link;
		int err;

		errno = 0;
		link = no_link_info ? bpf_program__attach_iter(progs[k], NULL) :
				      attach_ring(progs[k], fd);
		err = link ? 0 : errno;
		printf("attach case=%s iter=%s fd=%d errno=%d\n", name,
		       it_names[k], fd, err);
		bpf_link__destroy(link);
	}
}

static enum t_exit mode_attach(struct uring_iter *skel)
{
	struct io_uring ring;
	struct io_uring_params p;
	char path[] = "/tmp/uring_iter_attach.XXXXXX";
	int closed, devnull, reg, pfd[2], sk, efd, ring_fd, saved0;
	struct bpf_link *task_link;

	if (ring_init(&ring, &p, 4, 0, 0, 0))
		return t_fail("ring setup");
	ring_fd = ring.ring_fd;
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	reg = mkostemp(path, O_CLOEXEC);
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	efd = eventfd(0, EFD_CLOEXEC);
	/* far above the lowest free fd, so nothing opened later reuses it */
	closed = fcntl(devnull, F_DUPFD_CLOEXEC, 1000);
	if (devnull < 0 || reg < 0 || sk < 0 || efd < 0 || closed < 0 ||
	    pipe2(pfd, O_CLOEXEC))
		return t_fail("open fds");
	unlink(path);
	close(closed);
	task_link = bpf_program__attach_iter(skel->progs.dump_task, NULL);
	if (!task_link)
		return t_fail("attach the task iterator");

	attach_case(skel, "ring", ring_fd, false);
	attach_case(skel, "no_link_info", -1, true);
	attach_case(skel, "zero", 0, false);
	attach_case(skel, "closed", closed, false);
	attach_case(skel, "never_opened", 1 << 30, false);
	attach_case(skel, "u32_max", -1, false);
	attach_case(skel, "devnull", devnull, false);
	attach_case(skel, "regular", reg, false);
	attach_case(skel, "pipe", pfd[0], false);
	attach_case(skel, "socket", sk, false);
	attach_case(skel, "eventfd", efd, false);
	attach_case(skel, "bpf_link", bpf_link__fd(task_link), false);

	/* 0 means "no ring" even when fd 0 is one */
	saved0 = fcntl(0, F_DUPFD_CLOEXEC, 3);
	if (dup2(ring_fd, 0) != 0)
		return t_fail("dup2 ring to fd 0");
	attach_case(skel, "zero_is_ring", 0, false);
	if (saved0 >= 0)
		dup2(saved0, 0);
	else
		close(0);

	bpf_link__destroy(task_link);
	io_uring_queue_exit(&ring);
	return t_pass();
}

/*
 * Pins a buffer iterator link on a ring at @path and exits: the pinned link
 * is then the only thing keeping the ring alive. The test reads it with
 * cat(1), lists it with the distribution's bpftool and removes the pin.
 */
static enum t_exit mode_pin(struct uring_iter *skel, const char *path)
{
	static char buf[PAGE_SZ] __attribute__((aligned(4096)));
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct io_uring_params p;
	struct io_uring ring;
	struct bpf_link *link;
	struct stat st;
	int ret;

	if (ring_init(&ring, &p, 4, 0, 0, 0))
		return t_fail("ring setup");
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret) {
		t_diag("io_uring_register_buffers: %s", strerror(-ret));
		return t_fail("register buffers");
	}
	if (fstat(ring.ring_fd, &st))
		return t_fail("fstat ring");
	link = attach_ring(skel->progs.dump_buf, ring.ring_fd);
	if (!link)
		return t_fail("attach");
	if (bpf_link__pin(link, path)) {
		t_diag("bpf_link__pin %s: %s", path, strerror(errno));
		return t_fail("pin");
	}
	printf("pinned path=%s ring_ino=%lu buf=0x%lx len=%zu\n", path,
	       (unsigned long)st.st_ino, (unsigned long)buf, sizeof(buf));
	bpf_link__destroy(link);
	io_uring_queue_exit(&ring);
	return t_pass();
}

int main(int argc, char *argv[])
{
	struct uring_iter *skel;
	enum t_exit res;

	if (argc < 2) {
		fprintf(stderr, "usage: %s bufs|huge thp|huge hugetlb|files|edeadlk|attach|pin PATH\n",
			argv[0]);
		return T_EXIT_FAIL;
	}
	t_mode = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_plan(1);
	if (open_page_views())
		return t_fail("cannot open pagemap (needs root)");
	skel = load_skel();
	if (!skel)
		return t_fail("loading the iterator programs failed: does the kernel have the io_uring_buf/io_uring_file iterators?");

	if (!strcmp(t_mode, "bufs"))
		res = mode_bufs(skel);
	else if (!strcmp(t_mode, "huge") && argc > 2)
		res = mode_huge(skel, argv[2]);
	else if (!strcmp(t_mode, "files"))
		res = mode_files(skel);
	else if (!strcmp(t_mode, "edeadlk"))
		res = mode_edeadlk(skel);
	else if (!strcmp(t_mode, "attach"))
		res = mode_attach(skel);
	else if (!strcmp(t_mode, "pin") && argc > 2)
		res = mode_pin(skel, argv[2]);
	else
		res = t_fail("unknown mode");
	uring_iter__destroy(skel);
	return res;
}

#endif /* HAVE_IO_URING_ITER_UAPI */
