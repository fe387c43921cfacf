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

#define UCR_IMAGE_VERSION	1

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
 * Testing aid (the image fuzzer): recompute the sizes and CRCs in @dir's
 * manifest after its parts were changed, so that the reader's checks
 * behind the checksums are exercised too.
 */
int ucr_image_reseal(const char *dir, struct ucr_err *err);

#endif /* URINGCR_H */
