/* SPDX-License-Identifier: GPL-2.0 */
/* The process being dumped (target.c) and freezing it (freeze.c). */
#ifndef UCR_TARGET_H
#define UCR_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* One mapping of the process as its smaps shows it (ucr_target_backing()) */
struct ucr_vma {
	uint64_t start, end, pgoff;
	bool shared, hugetlb;
	char path[UCR_PATH_MAX];
};

struct ucr_target {
	pid_t pid;
	int pidfd;
	char comm[64];
	int mem_fd;		/* /proc/PID/mem and pagemap, opened on first use */
	int pagemap_fd;
	struct ucr_vma *vmas;	/* smaps, read once on first use, sorted */
	size_t nr_vmas;
	bool vmas_read;
};

/* pidfd_open(): fails naming the pid when it does not exist. */
int ucr_target_open(struct ucr_target *t, pid_t pid, struct ucr_err *err);
void ucr_target_close(struct ucr_target *t);
/* The fds of the process that are io_uring instances, ascending. */
int ucr_target_ring_fds(struct ucr_target *t, int **fds, size_t *nr,
			struct ucr_err *err);
/* pidfd_getfd(): the dumper's own copy of the process's fd @fd, or -errno. */
int ucr_target_getfd(struct ucr_target *t, int fd, struct ucr_err *err);
/* The process's mappings of the ring file with inode @ino. */
int ucr_target_maps(struct ucr_target *t, uint64_t ino, struct ucr_map *maps,
		    unsigned int max, unsigned int *nr, struct ucr_err *err);
/* Is [addr, addr+len) backed, page by page, by exactly @pfns? 1 yes, 0 no */
int ucr_target_pages_are(struct ucr_target *t, uint64_t addr, uint64_t len,
			 const uint64_t *pfns, size_t nr_pfns, struct ucr_err *err);
/* What backs @addr: read from one look at /proc/PID/smaps per dump. */
int ucr_target_backing(struct ucr_target *t, uint64_t addr, enum ucr_backing *kind,
		       uint64_t *off, char *path, size_t size, struct ucr_err *err);
/* Reads the process's memory at @addr (/proc/PID/mem). */
int ucr_target_read(struct ucr_target *t, uint64_t addr, void *buf, size_t len,
		    struct ucr_err *err);

struct ucr_freezer {
	enum ucr_freeze mode;
	pid_t pid;
	int pidfd;
	bool was_frozen;	/* stopped or frozen before we came */
	bool frozen;		/* by us, not yet thawed */
	char cgroup[4096];	/* UCR_FREEZE_CGROUP: its directory */
	pid_t guardian;
	int guard_fd;
	int broken_fd;		/* the guardian says 'B': the freeze was lifted */
	bool broken;
	uint64_t t_request, t_frozen;
	uint64_t first_request, first_frozen;	/* the first freeze of a dump */
	uint64_t frozen_us;	/* time frozen, summed over the drain's refreezes */
};

/*
 * Freezes the process and starts a guardian process that thaws it if the
 * dumper dies before ucr_thaw(). Waits until every thread that is not an
 * io_uring worker is stopped (or the cgroup reports frozen).
 */
int ucr_freeze(struct ucr_freezer *f, struct ucr_target *t, enum ucr_freeze mode,
	       struct ucr_err *err);
/*
 * True once the guardian lifted the freeze because the dumper itself was
 * stopped too long: what was read since may not be consistent.
 */
bool ucr_freeze_broken(struct ucr_freezer *f);
void ucr_freezer_init(struct ucr_freezer *f);
void ucr_freezer_fini(struct ucr_freezer *f);

/* Leaves the process as it was before ucr_freeze(); 0 or -errno. */
int ucr_thaw(struct ucr_freezer *f, struct ucr_err *err);

#endif /* UCR_TARGET_H */
