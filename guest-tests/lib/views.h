/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Views of a ring's registrations that do not go through the iterators,
 * printed as records for the Python side to compare with the iterator
 * output: /proc/self/pagemap and /proc/kpageflags, VmPin, the ring's
 * fdinfo, the ring itself, and a decoy ring the iterators must never show.
 */
#ifndef GUEST_VIEWS_H
#define GUEST_VIEWS_H

#include <stdint.h>
#include <sys/uio.h>

#include <liburing.h>

/* include/uapi/linux/kernel-page-flags.h */
#define KPF_HUGE	17
#define KPF_THP		22

/* Opens pagemap and kpageflags (root only): 0, or -1 with a diagnostic. */
int open_page_views(void);
/* The PFN behind @addr (0: not present), and its kpageflags */
uint64_t page_pfn(unsigned long addr);
uint64_t page_flags(uint64_t pfn);

/* VmPin of this process in kB, -1 if unknown */
long vmpin_kb(void);

/* "ring name=<name> fd= ino= sq_entries= cq_entries= flags=" */
void print_ring(const char *name, struct io_uring *ring,
		const struct io_uring_params *p);

/* Every line of the ring's /proc/self/fdinfo as "fdinfo <line>" */
void print_fdinfo(int fd);

/*
 * "table kind=buf slots=<nr>", then per slot "regbuf slot=.. empty" or
 * "regbuf slot=.. addr=.. len=.." followed by "page slot=.. addr=.. pfn=..
 * kpf=.." for every page under it.
 */
void print_regbufs(const struct iovec *iov, int nr);

/*
 * A second ring with a 3-page buffer at @mem and a file registered: the
 * iterators of the ring under test must not show them. 0 or -1.
 */
int decoy_ring(struct io_uring *ring, void *mem);

#endif /* GUEST_VIEWS_H */
