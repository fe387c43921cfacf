// SPDX-License-Identifier: GPL-2.0
/*
 * The process being dumped: its pidfd, its ring fds (taken with
 * pidfd_getfd(): 6.12 refuses io_uring files in SCM_RIGHTS), its mappings
 * of a ring, and its memory. Every access needs ptrace attach rights over
 * the process, and every error says so when they are missing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "target.h"

#define RIGHTS "uringcr needs ptrace attach rights over it (PTRACE_MODE_ATTACH_REALCREDS: the same user and kernel.yama.ptrace_scope allowing it, or CAP_SYS_PTRACE): run uringcr as root or as that process's user"

static int no_rights(struct ucr_err *err, int e, pid_t pid, const char *what)
{
	return ucr_errf(err, -e, "process %d: %s: %s: %s", pid, what, strerror(e), RIGHTS);
}

static int gone(struct ucr_err *err, pid_t pid, const char *what)
{
	return ucr_errf(err, -ESRCH, "process %d: %s: no such process (it exited, or the pid is wrong)",
			pid, what);
}

int ucr_target_open(struct ucr_target *t, pid_t pid, struct ucr_err *err)
{
	char path[64];
	FILE *f;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->mem_fd = t->pagemap_fd = -1;
	t->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (t->pidfd < 0) {
		if (errno == ESRCH)
			return gone(err, pid, "pidfd_open");
		return ucr_errf(err, -errno, "process %d: pidfd_open: %s", pid, strerror(errno));
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(t->comm, sizeof(t->comm), f))
			t->comm[strcspn(t->comm, "\n")] = '\0';
		fclose(f);
	}
	return 0;
}

void ucr_target_close(struct ucr_target *t)
{
	if (t->pidfd > 0)
		close(t->pidfd);
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	t->pidfd = t->mem_fd = t->pagemap_fd = -1;
	free(t->vmas);
	t->vmas = NULL;
	t->nr_vmas = 0;
	t->vmas_read = false;
}

/* /proc/PID/<name>, kept open in *@fd for the whole dump (thousands of buffers) */
static int proc_fd(struct ucr_target *t, int *fd, const char *name, struct ucr_err *err)
{
	char path[64];

	if (*fd >= 0)
		return *fd;
	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, name);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		char what[64];

		snprintf(what, sizeof(what), "reading /proc/PID/%s", name);
		return errno == ENOENT ? gone(err, t->pid, what) : no_rights(err, errno, t->pid, what);
	}
	return *fd;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int ucr_target_ring_fds(struct ucr_target *t, int **fds, size_t *nr,
			struct ucr_err *err)
{
	char dir[64], path[PATH_MAX], link[64];
	size_t n = 0, cap = 16;
	struct dirent *de;
	int *out;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", t->pid);
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return gone(err, t->pid, "listing its fds");
		return no_rights(err, errno, t->pid, "listing its fds (/proc/PID/fd)");
	}
	out = malloc(cap * sizeof(*out));
	if (!out) {
		closedir(d);
		return ucr_errf(err, -ENOMEM, "out of memory");
	}
	while ((de = readdir(d))) {
		ssize_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;	/* closed meanwhile */
		link[len] = '\0';
		if (strcmp(link, "anon_inode:[io_uring]"))
			continue;
		if (n == cap) {
			int *no = realloc(out, 2 * cap * sizeof(*out));

			if (!no) {
				free(out);
				closedir(d);
				return ucr_errf(err, -ENOMEM, "out of memory");
			}
			out = no;
			cap *= 2;
		}
		out[n++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(out, n, sizeof(*out), cmp_int);
	*fds = out;
	*nr = n;
	return 0;
}

int ucr_target_getfd(struct ucr_target *t, int fd, struct ucr_err *err)
{
	int ret = syscall(SYS_pidfd_getfd, t->pidfd, fd, 0);

	if (ret >= 0)
		return ret;
	if (errno == EPERM || errno == EACCES)
		return no_rights(err, errno, t->pid, "pidfd_getfd of its ring");
	if (errno == ESRCH)
		return gone(err, t->pid, "pidfd_getfd");
	if (errno == EBADF)
		return ucr_errf(err, -EBADF, "process %d: fd %d is not open (closed meanwhile, or a wrong --fd)",
				t->pid, fd);
	return ucr_errf(err, -errno, "process %d: pidfd_getfd(%d): %s", t->pid, fd, strerror(errno));
}

/* One mapping's line of /proc/PID/maps or smaps; @name points into the line. */
struct map_line {
	unsigned long long start, end, pgoff, inode;
	char perms[8];
	const char *name;
};

static bool map_line(char *line, struct map_line *m)
{
	char dev[16];
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %15s %llu %n", &m->start, &m->end, m->perms,
		   &m->pgoff, dev, &m->inode, &pos) < 6)
		return false;
	line[strcspn(line, "\n")] = '\0';
	m->name = line + pos;
	return true;
}

/* /proc/PID/<name> for reading, or NULL with @err saying why */
static FILE *proc_file(struct ucr_target *t, const char *name, struct ucr_err *err)
{
	char path[64], what[64];
	FILE *f;
	int e;

	snprintf(path, sizeof(path), "/proc/%d/%s", t->pid, name);
	f = fopen(path, "re");
	if (f)
		return f;
	e = errno;
	if (e == ENOENT) {
		snprintf(what, sizeof(what), "reading its %s", name);
		gone(err, t->pid, what);
	} else {
		snprintf(what, sizeof(what), "reading /proc/PID/%s", name);
		no_rights(err, e, t->pid, what);
	}
	return NULL;
}

int ucr_target_maps(struct ucr_target *t, uint64_t ino, struct ucr_map *maps,
		    unsigned int max, unsigned int *nr, struct ucr_err *err)
{
	char line[512];
	struct map_line m;
	FILE *f;

	*nr = 0;
	f = proc_file(t, "maps", err);
	if (!f)
		return err->code;
	while (fgets(line, sizeof(line), f)) {
		if (!map_line(line, &m) || m.inode != ino || !strstr(m.name, "anon_inode:[io_uring]"))
			continue;
		if (*nr == max) {
			fclose(f);
			return ucr_errf(err, -E2BIG, "process %d: more than %u mappings of ring inode %" PRIu64,
					t->pid, max, ino);
		}
		maps[*nr].start = m.start;
		maps[*nr].end = m.end;
		maps[*nr].pgoff = m.pgoff;
		++*nr;
	}
	fclose(f);
	return 0;
}

int ucr_target_pages_are(struct ucr_target *t, uint64_t addr, uint64_t len,
			 const uint64_t *pfns, size_t nr_pfns, struct ucr_err *err)
{
	uint64_t first = addr >> 12, last = (addr + len - 1) >> 12, i;
	uint64_t e[512];
	int fd, same = 1;

	if (last - first + 1 != nr_pfns)
		return 0;
	fd = proc_fd(t, &t->pagemap_fd, "pagemap", err);
	if (fd < 0)
		return fd;
	for (i = first; i <= last && same; i += 512) {
		size_t n = last - i + 1 < 512 ? last - i + 1 : 512, j;

		if (pread(fd, e, n * 8, i * 8) != (ssize_t)(n * 8))
			return ucr_errf(err, -EIO, "process %d: pagemap read at page 0x%" PRIx64 " failed",
					t->pid, i);
		/* bit 63 present; bits 0-54 the PFN (zero without CAP_SYS_ADMIN) */
		for (j = 0; j < n && same; j++)
			if (!(e[j] >> 63) || (e[j] & ((1ULL << 55) - 1)) != pfns[i - first + j])
				same = 0;
	}
	return same;
}

/*
 * Every mapping of the process from one read of /proc/PID/smaps: hugetlb
 * (KernelPageSize above 4 kB), shared with a file, or private. Read once:
 * a ring with 16384 buffers would otherwise read smaps 16384 times, each
 * walking every mapping's page tables.
 */
static int read_vmas(struct ucr_target *t, struct ucr_err *err)
{
	char line[768];
	struct map_line m;
	size_t cap = 0;
	FILE *f;

	t->vmas_read = true;
	f = proc_file(t, "smaps", err);
	if (!f)
		return err->code;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kps;
		struct ucr_vma *v;

		if (map_line(line, &m)) {
			if (t->nr_vmas == cap) {
				void *n = realloc(t->vmas, (cap = cap ? 2 * cap : 256) * sizeof(*v));

				if (!n) {
					fclose(f);
					return ucr_errf(err, -ENOMEM, "out of memory");
				}
				t->vmas = n;
			}
			v = &t->vmas[t->nr_vmas++];
			memset(v, 0, sizeof(*v));
			v->start = m.start;
			v->end = m.end;
			v->pgoff = m.pgoff;
			v->shared = m.perms[3] == 's' && m.inode;
			if (v->shared)
				snprintf(v->path, sizeof(v->path), "%s", m.name);
		} else if (t->nr_vmas && sscanf(line, "KernelPageSize: %llu kB", &kps) == 1) {
			t->vmas[t->nr_vmas - 1].hugetlb = kps > 4;
		}
	}
	fclose(f);
	return 0;
}

int ucr_target_backing(struct ucr_target *t, uint64_t addr, enum ucr_backing *kind,
		       uint64_t *off, char *path, size_t size, struct ucr_err *err)
{
	size_t lo = 0, hi;
	int ret;

	*kind = UCR_BACK_ANON;
	*off = 0;
	path[0] = '\0';
	if (!t->vmas_read) {
		ret = read_vmas(t, err);
		if (ret)
			return ret;
	}
	hi = t->nr_vmas;
	while (lo < hi) {	/* smaps lists the mappings in address order */
		size_t mid = (lo + hi) / 2;
		const struct ucr_vma *v = &t->vmas[mid];

		if (addr < v->start) {
			hi = mid;
		} else if (addr >= v->end) {
			lo = mid + 1;
		} else {
			if (v->hugetlb) {
				*kind = UCR_BACK_HUGETLB;
			} else if (v->shared) {
				*kind = UCR_BACK_SHARED;
				*off = v->pgoff + (addr - v->start);
				snprintf(path, size, "%s", v->path);
			}
			break;
		}
	}
	return 0;
}

int ucr_target_read(struct ucr_target *t, uint64_t addr, void *buf, size_t len,
		    struct ucr_err *err)
{
	size_t got = 0;
	int fd = proc_fd(t, &t->mem_fd, "mem", err);

	if (fd < 0)
		return fd;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, addr + got);

		if (n <= 0) {
			int e = n ? errno : EIO;

			return ucr_errf(err, -e, "process %d: reading its memory at 0x%" PRIx64 ": %s",
					t->pid, addr + got, strerror(e));
		}
		got += n;
	}
	return 0;
}
