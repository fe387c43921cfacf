/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The series' io_uring_reg_buf and io_uring_reg_file iterators
 * (bpf/uring_iter.bpf.c): loading the programs, attaching them to a ring,
 * and reading an iterator fd.
 */
#ifndef GUEST_ITER_H
#define GUEST_ITER_H

#include <stdbool.h>
#include <stddef.h>

#include <bpf/libbpf.h>

#include "ktap.h"

enum iter_kind { IT_BUF, IT_FILE };
extern const char *const it_name[2];

/* The loaded skeleton; include "uring_iter.skel.h" to use its fields. */
extern struct uring_iter *iter_skel;

/*
 * Loads the iterator programs: T_EXIT_PASS, or the result line already
 * printed and its exit status: SKIP when the program was built without
 * the io_uring iterator UAPI (KERNEL_HEADERS of a kernel without the
 * series), FAIL when the kernel refuses the programs.
 */
enum t_exit iter_load(void);
void iter_unload(void);

struct bpf_program *iter_prog(enum iter_kind kind);

/* @prog (an io_uring iterator program) attached to the ring @ring_fd */
struct bpf_link *attach_ring(struct bpf_program *prog, int ring_fd);
/* attach_ring() of the @kind iterator */
struct bpf_link *iter_attach(enum iter_kind kind, int ring_fd);

/*
 * A new iterator fd of @link; with @nonblock, O_NONBLOCK, which is what lets
 * io_uring issue a read of it inline (under ->uring_lock) instead of punting
 * it to io-wq. On failure -1, errno as bpf_iter_create() or fcntl() left it.
 */
int iter_open(struct bpf_link *link, bool nonblock);

/*
 * read(2) @fd to EOF into @buf, NUL-terminated: @chunk bytes a call, or all
 * that fits when @chunk is 0 (small chunks make the iterator stop and resume
 * between objects). EAGAIN (a read(2) ends after 1024 objects, one hold of
 * ->uring_lock) is retried; EDEADLK ("busy") up to @retries times in all,
 * each counted in *@busy when @busy is given. Returns the length, -E2BIG
 * when @buf is too small, -EDEADLK when the retries ran out, or -errno.
 */
long read_walk(int fd, char *buf, size_t size, size_t chunk, int retries,
	       long *busy);

/* A read size of iter_dump() that takes the whole walk at once */
#define ITER_WHOLE	(128 * 1024)

/*
 * One walk of @link read in @chunk-byte reads, printed as
 * "walk <name> bytes=<n> chunk=<chunk>" and "iter <name> <line>" lines
 * ("walk <name> error=<errno>" when a read fails). 0 or -1.
 */
int iter_dump(struct bpf_link *link, const char *name, size_t chunk);

/*
 * "counters when=<when> buf_objects=.. buf_stops=.. file_objects=..
 * file_stops=..": the programs' own counts of objects and final calls.
 */
void iter_print_counters(const char *when);

#endif /* GUEST_ITER_H */
