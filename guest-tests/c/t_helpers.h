/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers of the guest C programs: liburing-style exit codes and KTAP
 * output (Documentation/dev-tools/ktap.rst), read by the pytest that runs them.
 */
#ifndef T_HELPERS_H
#define T_HELPERS_H

#include <stdarg.h>
#include <stdio.h>

enum t_exit {
	T_EXIT_PASS = 0,
	T_EXIT_FAIL = 1,
	T_EXIT_SKIP = 77,
};

static inline void t_plan(int nr_tests)
{
	printf("TAP version 13\n1..%d\n", nr_tests);
}

/* A diagnostic line: "# ..." */
static inline void __attribute__((format(printf, 1, 2))) t_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* The result line of test number @nr, and the matching exit code. */
static inline enum t_exit t_result(int nr, const char *name, enum t_exit res,
				   const char *reason)
{
	switch (res) {
	case T_EXIT_PASS:
		printf("ok %d %s\n", nr, name);
		break;
	case T_EXIT_SKIP:
		printf("ok %d %s # SKIP %s\n", nr, name, reason ? reason : "");
		break;
	default:
		printf("not ok %d %s%s%s\n", nr, name, reason ? " # " : "",
		       reason ? reason : "");
		res = T_EXIT_FAIL;
		break;
	}
	fflush(stdout);
	return res;
}

#endif /* T_HELPERS_H */
