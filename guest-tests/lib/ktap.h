/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KTAP output (Documentation/dev-tools/ktap.rst) and the exit convention of
 * every guest program: one KTAP test per run, named by t_start(), whose
 * result line is the last line printed, and an exit status that says the
 * same (liburing's test/helpers.h codes; README.md says why 77).
 *
 *   TAP version 13
 *   1..1
 *   ... records, "# diagnostics", "step <what>" ...
 *   ok 1 <name> | not ok 1 <name> # <reason> | ok 1 <name> # SKIP <reason>
 */
#ifndef GUEST_KTAP_H
#define GUEST_KTAP_H

enum t_exit {
	T_EXIT_PASS = 0,
	T_EXIT_FAIL = 1,
	T_EXIT_SKIP = 77,
};

/* Names the run's one test, prints the plan, parses tscale=F (clock.h). */
void t_start(const char *name, int argc, char *argv[]);

/* "# ..." */
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "step <what>", flushed, before anything that may hang in the kernel. */
void step(const char *what);

/* The result line; each returns the exit status that goes with it. */
enum t_exit t_pass(void);
enum t_exit t_fail(const char *why);
enum t_exit t_skip(const char *why);
/* t_pass() for T_EXIT_PASS, t_skip(why), or t_fail(why) for anything else. */
enum t_exit t_result(enum t_exit res, const char *why);

/* The value of a "key=value" argument, or @def when there is none. */
long t_arg_long(int argc, char *argv[], const char *key, long def);
double t_arg_double(int argc, char *argv[], const char *key, double def);

#endif /* GUEST_KTAP_H */
