/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libguest.a, the library of the guest programs in c/: everything a
 * program needs, in the manner of liburing's test/helpers.h.
 *
 *   ktap.h       KTAP output, the exit convention, key=value arguments
 *   clock.h      ms clock, sleeps, the scale of waits on the kernel
 *   ring.h       ring set-up, bounded submit and wait
 *   iter.h       the io_uring iterators: load, attach, open, read (walk)
 *   views.h      pagemap, kpageflags, VmPin, fdinfo, a decoy ring
 *   tally.h      outcome counts of reads: ok / edeadlk / failed
 *   target.h     a ring with known tables and its reference walks
 *   fuse_gate.h  ->uring_lock held on purpose, through a FUSE page fault
 */
#ifndef GUEST_H
#define GUEST_H

#define PAGE_SZ		4096UL
#define HPAGE_SZ	(2UL << 20)

#include "clock.h"
#include "fuse_gate.h"
#include "iter.h"
#include "ktap.h"
#include "ring.h"
#include "tally.h"
#include "target.h"
#include "views.h"

#endif /* GUEST_H */
