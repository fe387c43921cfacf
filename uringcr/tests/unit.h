/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The host unit tests' checks (unit.c): each failed check prints its file,
 * line and what it saw; t_done() prints the count and gives the exit status.
 */
#ifndef UCR_UNIT_H
#define UCR_UNIT_H

#include <stdbool.h>

bool t_check(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int t_done(const char *name);

/* @ret must be 0; @why says what went wrong otherwise */
#define T_OK(ret, why) do {						\
	int r_ = (ret);							\
	t_check(!r_, __FILE__, __LINE__, "%d: %s", r_, (why));		\
} while (0)

#define T_EQ(got, want, what) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	t_check(g_ == w_, __FILE__, __LINE__, "%s: %lld, want %lld",	\
		(what), g_, w_);					\
} while (0)

#define T_HAS(text, part, what)						\
	t_check(strstr((text), (part)) != NULL, __FILE__, __LINE__,	\
		"%s: \"%s\" is not in \"%s\"", (what), (part), (text))

#endif /* UCR_UNIT_H */
