/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Outcome counts of one scenario's reads, safe to bump from several
 * threads. A read is "ok" when it returned what it must, "edeadlk" when it
 * failed with EDEADLK, "failed" otherwise ("refused" where a refusal is the
 * expected outcome). The lines printed (parsed by lockorder.py):
 *
 *   outcome scenario=<name> ok=<n> edeadlk=<n> failed=<n> [refused=<n>]
 *           rounds=<n> ms=<n>
 *   timing scenario=<name> rounds=<n> ms=<n>  (reads judged by the Python side)
 *   bad scenario=<name> <what>                one per failed read, capped
 *   check scenario=<name> <key>=<value>       facts the Python side asserts
 */
#ifndef GUEST_TALLY_H
#define GUEST_TALLY_H

#include <stdatomic.h>
#include <stdbool.h>

#define BAD_LINES_MAX	20

struct tally {
	const char *name;
	atomic_long ok, edeadlk, failed, refused;
	atomic_int bad_lines;
	long rounds;
	long start_ms;
	bool with_refused;
};

void tally_init(struct tally *t, const char *name, long rounds);
/* A "bad" line; only the first BAD_LINES_MAX are printed. */
void tally_bad(struct tally *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tally_print(struct tally *t);
void tally_timing(struct tally *t);
void tally_check(struct tally *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* GUEST_TALLY_H */
