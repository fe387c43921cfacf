/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A ring with known tables, both iterators attached, and the whole walk of
 * each as read(2) gives it: the tables do not change afterwards, so every
 * successful read must give exactly that.
 *
 * Buffers: slot 0 one page, slot 1 empty, slot 2 two pages from mid-page
 * (three bvecs). Files: a memfd, an empty slot, /dev/null and the write
 * end of a pipe; the table holds the only references to them, so when the
 * ring is freed the pipe's read end (kept here) sees POLLHUP.
 */
#ifndef GUEST_TARGET_H
#define GUEST_TARGET_H

#include <stdbool.h>

#include <liburing.h>

#include "tally.h"

struct bpf_link;

#define TEXT_MAX	(64 * 1024)

struct target {
	char name[16];
	struct io_uring ring;
	bool ring_open;
	char *mem;
	struct bpf_link *link[2];
	char *ref[2];
	long ref_len[2];
	int pipe_rd;
};

/* 0, or -1 with a diagnostic */
int target_init(struct target *t, const char *name, bool sqpoll);
void target_close_ring(struct target *t);
void target_destroy_links(struct target *t);
/* Everything; with @tl, "check ... freed=<name>:<0|1>" says whether the ring went. */
void target_free(struct target *t, struct tally *tl);

/*
 * The ring is freed once the pipe's write end, which only its file table
 * holds, is closed: wait up to @ms for POLLHUP. 1 freed, 0 not (yet).
 */
int ring_freed(int pipe_rd, int ms);

/* @res bytes in @buf: the whole walk, as the reference has it? */
bool same_walk(const struct target *t, int kind, const char *buf, long res);

/*
 * Counts a read of @t's @kind iterator that gave @res (bytes in @buf, or
 * -errno): ok when it is the whole walk, edeadlk, or failed with a "bad"
 * line saying @what.
 */
void classify(struct tally *tl, const struct target *t, int kind,
	      const char *buf, long res, const char *what);

/*
 * "walk scenario=<s> name=<n> res=<bytes or -errno> busy=<EDEADLK retries>
 * [extra]" and the text as "iter <s>/<n> <line>" lines.
 */
void print_walk(const char *scenario, const char *name, const char *text,
		long res, long busy, const char *extra);
/* print_walk() of both reference walks, as ref-buf and ref-file */
void print_refs(const char *scenario, const struct target *t);

/*
 * A plain ring with the one page at @page registered as its buffer, and a
 * buffer iterator link of it in *@link; nothing read yet. 0 or -1.
 */
int one_page_ring(struct io_uring *ring, char *page, struct bpf_link **link);

#endif /* GUEST_TARGET_H */
