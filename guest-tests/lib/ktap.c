// SPDX-License-Identifier: GPL-2.0
/*
 * KTAP output and the exit convention (ktap.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ktap.h"

static const char *t_name = "unnamed";

void t_start(const char *name, int argc, char *argv[])
{
	double scale = t_arg_double(argc, argv, "tscale", 1.0);

	t_name = name;
	t_tscale = scale > 0 ? scale : 1.0;
	/* line by line, so that a helper killed on its deadline leaves all it said */
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..1\n");
}

void t_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void step(const char *what)
{
	printf("step %s\n", what);
	fflush(stdout);
}

enum t_exit t_pass(void)
{
	printf("ok 1 %s\n", t_name);
	fflush(stdout);
	return T_EXIT_PASS;
}

enum t_exit t_fail(const char *why)
{
	printf("not ok 1 %s%s%s\n", t_name, why ? " # " : "", why ? why : "");
	fflush(stdout);
	return T_EXIT_FAIL;
}

enum t_exit t_skip(const char *why)
{
	printf("ok 1 %s # SKIP %s\n", t_name, why ? why : "");
	fflush(stdout);
	return T_EXIT_SKIP;
}

enum t_exit t_result(enum t_exit res, const char *why)
{
	switch (res) {
	case T_EXIT_PASS:
		return t_pass();
	case T_EXIT_SKIP:
		return t_skip(why);
	default:
		return t_fail(why);
	}
}

static const char *t_arg(int argc, char *argv[], const char *key)
{
	size_t n = strlen(key);
	int i;

	for (i = 1; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

long t_arg_long(int argc, char *argv[], const char *key, long def)
{
	const char *v = t_arg(argc, argv, key);

	return v ? strtol(v, NULL, 0) : def;
}

double t_arg_double(int argc, char *argv[], const char *key, double def)
{
	const char *v = t_arg(argc, argv, key);

	return v ? atof(v) : def;
}
