// SPDX-License-Identifier: GPL-2.0
/*
 * Outcome counts (tally.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "tally.h"

void tally_init(struct tally *t, const char *name, long rounds)
{
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->rounds = rounds;
	t->start_ms = now_ms();
}

void tally_bad(struct tally *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (atomic_fetch_add(&t->bad_lines, 1) >= BAD_LINES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("bad scenario=%s %s\n", t->name, line);
}

void tally_print(struct tally *t)
{
	printf("outcome scenario=%s ok=%ld edeadlk=%ld failed=%ld", t->name,
	       atomic_load(&t->ok), atomic_load(&t->edeadlk),
	       atomic_load(&t->failed));
	if (t->with_refused)
		printf(" refused=%ld", atomic_load(&t->refused));
	printf(" rounds=%ld ms=%ld\n", t->rounds, now_ms() - t->start_ms);
}

void tally_timing(struct tally *t)
{
	printf("timing scenario=%s rounds=%ld ms=%ld\n", t->name, t->rounds,
	       now_ms() - t->start_ms);
}

void tally_check(struct tally *t, const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("check scenario=%s %s=", t->name, key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}
