/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The resume mode of a checkpoint scenario (c/cr_*.c): "<scenario> ...
 * resume DIR" restores ring 0 of the image DIR into a new process with
 * liburingcr and runs the same continuation the original runs after "go";
 * test_uringcr_restore.py compares the two processes' "result" lines.
 */
#ifndef GUEST_RESUME_H
#define GUEST_RESUME_H

#include <stdint.h>

#include <liburing.h>

/*
 * Restores ring @idx of @dir and sets up @ring over it. Prints "resume
 * restored ..." with the restore's figures and new_fds (the fds it left:
 * the ring, and the eventfd it created if any), or on failure "resume failed
 * ..." and what the failed restore left behind in this process (fds and
 * mappings that were not there before): "resume leftover fds=N maps=M".
 */
int resume_ring(const char *dir, unsigned int idx, struct io_uring *ring);

/*
 * Every ring of @dir (it must have @nr) restored together with
 * ucr_restore_image(), so that the buffers they share are shared again;
 * @rings[i] over ring i (at most 8). One "resume restored" line per ring.
 */
int resume_rings(const char *dir, unsigned int nr, struct io_uring *rings);
/* The eventfd resume_rings() registered in ring @idx (a new fd), or -1. */
int resumed_evfd(unsigned int idx);
/* This process's open fds and mappings (what a failed restore must not change) */
int count_fds(void);
int count_maps(void);

/* "result <fmt>": one line of the continuation both processes must agree on */
void result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Waits for one CQE, prints it as a result line, returns its res. */
int result_cqe(struct io_uring *ring, __u64 *user_data);

#endif /* GUEST_RESUME_H */
