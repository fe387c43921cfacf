// SPDX-License-Identifier: GPL-2.0
/* The host unit tests' checks (unit.h). */
#include <stdarg.h>
#include <stdio.h>

#include "unit.h"

static unsigned int checks, failed;

bool t_check(bool ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	checks++;
	if (ok)
		return true;
	failed++;
	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return false;
}

int t_done(const char *name)
{
	printf("%s: %u checks, %u failed\n", name, checks, failed);
	return failed ? 1 : 0;
}
