/* SPDX-License-Identifier: GPL-2.0 */
/*
 * liburingcr: checkpoint the io_uring instances of another process into an
 * image directory, and read such images back. The command line (uringcr)
 * is a thin layer over these calls; a C/R engine (a CRIU plugin) links the
 * library and makes the same calls. See README.md for the design, the image
 * format and every refusal.
 *
 * Errors: every call that can fail fills a struct ucr_err with a message
 * that names what failed and what to do about it, and returns -errno.
 */
#ifndef URINGCR_H
#define URINGCR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/io_uring.h>

#define UCR_IMAGE_VERSION	4

struct ucr_err {
	int code;		/* -errno */
	char msg[1024];
};

enum ucr_freeze {
	UCR_FREEZE_SIGSTOP,	/* SIGSTOP the process, SIGCONT after (default) */
	UCR_FREEZE_CGROUP,	/* cgroup v2 freezer of the process's cgroup */
	UCR_FREEZE_NONE,	/* the caller has frozen it (a C/R engine) */
};

struct ucr_opts {
	pid_t pid;
	int fd;			/* one ring at this fd of pid; -1: every ring */
	enum ucr_freeze freeze;
	unsigned int drain_ms;	/* wait this long for in-flight requests */
	unsigned int lock_ms;	/* retry EDEADLK (busy ->uring_lock) this long */
	unsigned int hold_ms;	/* testing: stay frozen this long before dumping */
	bool progress;		/* progress lines on stderr */
};

void ucr_opts_default(struct ucr_opts *o);

/*
 * A reason not to dump (a refusal): a stable name scripts can match, the
 * ring it concerns (its fd in the owner, -1 for the process) and a
 * sentence saying why and what would make it dumpable.
 */
struct ucr_refusal {
	const char *name;
	int fd;
	char why[384];
};

/* CRIU's dump statistics (criu.org/Statistics), in microseconds and bytes */
struct ucr_stats {
	uint64_t freezing_us;	/* from the freeze request until stopped */
	uint64_t frozen_us;	/* from stopped until resumed */
	uint64_t drain_us;	/* waiting for in-flight requests */
	uint64_t dump_us;	/* the whole call */
	uint64_t bytes_written;
	uint64_t pages_written;	/* buffer contents, in pages */
	uint64_t edeadlk_retries;
	unsigned int rings;
};

#define UCR_MAX_REFUSALS	64

struct ucr_report {
	unsigned int nr_rings;
	unsigned int nr_refusals;
	struct ucr_refusal refusals[UCR_MAX_REFUSALS];
	struct ucr_stats stats;
};

/*
 * Dump every ring of o->pid (or the one at o->fd) into @dir, which must not
 * exist yet; on any failure nothing is left at @dir. The process is frozen
 * (o->freeze) for the reading and always resumed as it was, also when the
 * dump fails; a guardian process resumes it if the caller dies. A ring the
 * image cannot carry faithfully fails the dump with -EOPNOTSUPP and its
 * refusals in @rep.
 */
int ucr_dump(const struct ucr_opts *o, const char *dir, struct ucr_report *rep,
	     struct ucr_err *err);

/* What ucr_dump() would carry and refuse, without writing anything. */
int ucr_check(const struct ucr_opts *o, struct ucr_report *rep,
	      struct ucr_err *err);

/* An image read and verified (every checksum, every field's range). */
struct ucr_image;

int ucr_image_open(const char *dir, struct ucr_image **img, struct ucr_err *err);
void ucr_image_close(struct ucr_image *img);

/* The image for a person (@json false) or as one JSON object. */
void ucr_image_show(const struct ucr_image *img, FILE *out, bool json);

/* The report of ucr_check()/ucr_dump() for a person or as JSON. */
void ucr_report_show(const struct ucr_report *rep, FILE *out, bool json);
/*
 * @n bytes of @s as a JSON string, quotes included: the escaping the
 * show functions use (bytes outside printable ASCII as \u00XX), for tools
 * that print the library's text in their own JSON.
 */
void ucr_json_str(FILE *out, const char *s, size_t n);

/*
 * Testing aid (the image fuzzer): recompute the sizes and CRCs in @dir's
 * manifest after its parts were changed, so that the reader's checks
 * behind the checksums are exercised too.
 */
int ucr_image_reseal(const char *dir, struct ucr_err *err);

/*
 * Restore (restore.c): one ring of an image into the calling process,
 * through io_uring's existing UAPI only. All or nothing: on failure no
 * ring, mapping, fd or personality is left behind and @err names the ring,
 * the part of the image and the step.
 */
enum ucr_mem {
	/*
	 * A new process: the restore maps the buffers' memory at the image's
	 * addresses (refusing any that are taken), fills it from the image,
	 * and unmaps again what the owner had unmapped.
	 */
	UCR_MEM_CREATE,
	/* A C/R engine restored the memory already: register it as it is. */
	UCR_MEM_EXISTING,
};

struct ucr_restored;

struct ucr_restore_opts {
	enum ucr_mem mem;
	/*
	 * Register this eventfd (ucr_restore_image(): in every ring that had
	 * one); -1: create one with the image's count, one per eventfd of the
	 * owner (rings that shared one share it again).
	 */
	int evfd;
	uint64_t max_replay;	/* refuse a counter replay of more operations; 0: any */
	bool progress;		/* progress lines on stderr */
	/*
	 * The image's rings this process restored before, indexed as in the
	 * image: a ring that shares buffers with one of them (CLONE_BUFFERS)
	 * clones them from it. ucr_restore_image() fills these in. Ring by
	 * ring, the rings come in the image's order; sharing that needs
	 * another order restores with ucr_restore_image() only.
	 */
	const struct ucr_restored *peers;
	unsigned int nr_peers;
};

void ucr_restore_opts_default(struct ucr_restore_opts *o);

/* CRIU's restore statistics and the replay's own */
struct ucr_restore_stats {
	uint64_t restore_us;	/* the whole call */
	uint64_t replay_us;	/* moving the kernel's counters */
	uint64_t nops;		/* NOPs submitted by the replay */
	uint64_t drops;		/* SQ entries dropped (SQ head without a CQE) */
	uint64_t msgs;		/* CQEs posted by IORING_OP_MSG_RING */
	uint64_t pers_calls;	/* IORING_(UN)REGISTER_PERSONALITY calls */
	uint64_t bytes_read;	/* buffer contents */
};

struct ucr_restored {
	int fd;			/* the ring */
	int evfd;		/* the eventfd the restore created and registered, or -1 */
	unsigned int nr_maps;
	struct {
		void *addr;
		size_t len;
		uint64_t pgoff;	/* IORING_OFF_* */
	} maps[4];		/* the ring mapped as the owner had it */
	bool relocated;		/* maps[] are not at the owner's addresses (6.12: always) */
	struct io_uring_params params;	/* as io_uring_setup() returned them */
	struct ucr_restore_stats stats;
};

int ucr_restore_ring(const struct ucr_image *img, unsigned int idx,
		     const struct ucr_restore_opts *o, struct ucr_restored *out,
		     struct ucr_err *err);
/*
 * Every ring of the image into @out (ucr_image_nr_rings() of them, in the
 * image's order), with the buffers and SQPOLL threads they share shared
 * again. The rings are set up in the first order that allows it (a
 * thread's first ring before those attached to it, a ring that clones
 * buffers after the rings it clones them from), then given their fds in
 * the image's order. All or nothing.
 */
int ucr_restore_image(const struct ucr_image *img, const struct ucr_restore_opts *o,
		      struct ucr_restored *out, struct ucr_err *err);
/* Undo a successful ucr_restore_ring(): the ring, its mappings, the eventfd. */
void ucr_restored_close(struct ucr_restored *r);

struct io_uring;
/*
 * For liburing users: a struct io_uring over the restored ring (a mapping
 * of its own, io_uring_queue_exit() unmaps it), its counters matching
 * the ring: SQEs the owner had queued but not submitted go with the next
 * io_uring_submit().
 */
int ucr_restored_liburing(const struct ucr_restored *r, struct io_uring *ring,
			  struct ucr_err *err);

unsigned int ucr_image_nr_rings(const struct ucr_image *img);

/*
 * Compare two images field by field, identity fields aside (diff.c):
 * prints one line per difference to @out (if not NULL) and returns their
 * number. UCR_DIFF_ADDRESSES also ignores where the ring is mapped.
 */
#define UCR_DIFF_ADDRESSES	0x1
unsigned int ucr_image_diff(const struct ucr_image *a, const struct ucr_image *b,
			    unsigned int flags, FILE *out);

#endif /* URINGCR_H */
