// SPDX-License-Identifier: GPL-2.0
/*
 * Minimal runner for the kernel series' prog_tests/<name>.c files, built
 * with test_progs.h from this directory (see there). The test functions
 * come from tests.h, which the Makefile generates from the sources as
 * SERIES_TEST(<name>, <function>) lines.
 *
 *   runner [-v|-vv] [NAME|NAME/SUBTEST]...
 *
 * Without arguments every test and subtest runs; otherwise only the named
 * ones (a test name selects all its subtests). Output, one line each, the
 * test's own output and failed checks in between:
 *
 *   RUN <test>                          a test function starts
 *   RUN <test>/<subtest>                a subtest starts
 *   RESULT <test>/<subtest> PASS|FAIL|SKIP <seconds>
 *   RESULT <test> PASS|FAIL|SKIP <seconds> failed=<n> skipped=<n> own_errors=<n>
 *
 * own_errors counts failed checks outside any subtest. A test is FAIL if it
 * or any of its subtests failed, SKIP if test__skip() was called outside a
 * subtest. stdout is line buffered, so the log up to a crash survives; the
 * caller treats a RUN without its RESULT as the place the runner died.
 * Exit status: 0 all passed or skipped, 1 some failed, 2 usage.
 */
#include "test_progs.h"

#define SERIES_TEST(name, fn) void fn(void);
#include "tests.h"
#undef SERIES_TEST

struct series_test {
	const char *name;
	void (*fn)(void);
};

static const struct series_test tests[] = {
#define SERIES_TEST(name, fn) { #name, fn },
#include "tests.h"
#undef SERIES_TEST
};

struct test_env env;

static char **filters;
static int nr_filters;

/* The test function running now, and its subtest if one is open. */
static struct {
	const char *name;
	double start;
	int own_errors;
	bool skipped;
	int failed_subtests;
	int skipped_subtests;
	char **subtests_seen;
	int nr_subtests_seen;

	bool in_subtest;
	char subtest[256];
	double subtest_start;
	int subtest_errors;
	bool subtest_skipped;
} cur;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool selected(const char *test, const char *subtest)
{
	size_t len = strlen(test);
	int i;

	if (!nr_filters)
		return true;
	for (i = 0; i < nr_filters; i++) {
		const char *f = filters[i];

		if (strncmp(f, test, len) || (f[len] && f[len] != '/'))
			continue;
		/* "test" selects everything in it, "test/sub" one subtest */
		if (!f[len] || !subtest || !strcmp(f + len + 1, subtest))
			return true;
	}
	return false;
}

void test__end_subtest(void)
{
	const char *verdict = "PASS";

	if (!cur.in_subtest)
		return;
	if (cur.subtest_errors) {
		verdict = "FAIL";
		cur.failed_subtests++;
	} else if (cur.subtest_skipped) {
		verdict = "SKIP";
		cur.skipped_subtests++;
	}
	printf("RESULT %s/%s %s %.3f\n", cur.name, cur.subtest, verdict,
	       now() - cur.subtest_start);
	fflush(stdout);
	cur.in_subtest = false;
}

bool test__start_subtest(const char *name)
{
	int i;

	test__end_subtest();
	if (!name || !*name || strlen(name) >= sizeof(cur.subtest) ||
	    strchr(name, ' ') || strchr(name, '\n')) {
		printf("%s: bad subtest name \"%s\"\n", cur.name,
		       name ? name : "(null)");
		cur.own_errors++;
		return false;
	}
	/* test_progs refuses duplicates too: results would be ambiguous */
	for (i = 0; i < cur.nr_subtests_seen; i++) {
		if (!strcmp(cur.subtests_seen[i], name)) {
			printf("%s: subtest \"%s\" started twice\n", cur.name,
			       name);
			cur.own_errors++;
			return false;
		}
	}
	cur.subtests_seen = realloc(cur.subtests_seen,
				    (cur.nr_subtests_seen + 1) * sizeof(char *));
	if (!cur.subtests_seen) {
		perror("realloc");
		exit(2);
	}
	cur.subtests_seen[cur.nr_subtests_seen++] = strdup(name);

	if (!selected(cur.name, name))
		return false;
	snprintf(cur.subtest, sizeof(cur.subtest), "%s", name);
	cur.in_subtest = true;
	cur.subtest_errors = 0;
	cur.subtest_skipped = false;
	printf("RUN %s/%s\n", cur.name, name);
	fflush(stdout);
	cur.subtest_start = now();
	return true;
}

void test__skip(void)
{
	if (cur.in_subtest)
		cur.subtest_skipped = true;
	else
		cur.skipped = true;
}

void test__fail(void)
{
	if (cur.in_subtest)
		cur.subtest_errors++;
	else
		cur.own_errors++;
}

/* Everything is printed anyway: the caller keeps the log of each subtest. */
void test__force_log(void)
{
}

int test__join_cgroup(const char *path)
{
	printf("test__join_cgroup(%s): not supported by this runner\n", path);
	test__fail();
	return -1;
}

bool __series_check(bool ok, const char *file, int line, const char *func,
		    const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok && env.verbosity < 1)
		return true;
	if (!ok)
		test__fail();
	printf("%s:%d: %s: %s: %s: ", file, line, func, ok ? "PASS" : "FAIL",
	       name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return ok;
}

/* A line of @s around offset @at, at most @width bytes, escaped. */
static void print_excerpt(const char *label, const char *s, size_t at,
			  size_t width)
{
	size_t len = strlen(s), from = at > width / 2 ? at - width / 2 : 0;
	size_t i;

	printf("    %s (%zu bytes, from offset %zu): \"", label, len, from);
	for (i = from; i < len && i < from + width; i++) {
		unsigned char c = s[i];

		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	printf("\"%s\n", i < len ? "..." : "");
}

bool __series_check_str(bool ok, const char *file, int line,
			const char *func, const char *name, const char *what,
			const char *actual, const char *expected)
{
	size_t at = 0;

	if (ok && env.verbosity < 1)
		return true;
	if (!ok)
		test__fail();
	printf("%s:%d: %s: %s: %s: want %s\n", file, line, func,
	       ok ? "PASS" : "FAIL", name, what);
	if (ok)
		return true;
	while (actual[at] && actual[at] == expected[at])
		at++;
	if (strcmp(what, "a substring"))
		printf("    first difference at offset %zu\n", at);
	else
		at = 0;
	print_excerpt("actual", actual, at, 240);
	print_excerpt("expected", expected, strcmp(what, "a substring") ? at : 0,
		      240);
	return false;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG && env.verbosity < 2)
		return 0;
	return vprintf(fmt, ap);
}

static int run_test(const struct series_test *t)
{
	const char *verdict = "PASS";
	int i;

	memset(&cur, 0, sizeof(cur));
	cur.name = t->name;
	printf("RUN %s\n", t->name);
	fflush(stdout);
	cur.start = now();
	t->fn();
	test__end_subtest();
	if (cur.own_errors || cur.failed_subtests)
		verdict = "FAIL";
	else if (cur.skipped)
		verdict = "SKIP";
	printf("RESULT %s %s %.3f failed=%d skipped=%d own_errors=%d\n",
	       t->name, verdict, now() - cur.start, cur.failed_subtests,
	       cur.skipped_subtests, cur.own_errors);
	fflush(stdout);
	for (i = 0; i < cur.nr_subtests_seen; i++)
		free(cur.subtests_seen[i]);
	free(cur.subtests_seen);
	return cur.own_errors || cur.failed_subtests;
}

int main(int argc, char *argv[])
{
	int i, failed = 0, ran = 0;

	/* the log must survive a crash of the test */
	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v"))
			env.verbosity = 1;
		else if (!strcmp(argv[i], "-vv"))
			env.verbosity = 2;
		else {
			fprintf(stderr, "usage: %s [-v|-vv] [NAME[/SUBTEST]]...\n",
				argv[0]);
			return 2;
		}
	}
	filters = &argv[i];
	nr_filters = argc - i;
	libbpf_set_print(libbpf_print);

	for (i = 0; i < (int)ARRAY_SIZE(tests); i++) {
		if (!selected(tests[i].name, NULL))
			continue;
		failed |= run_test(&tests[i]);
		ran++;
	}
	if (!ran) {
		fprintf(stderr, "no test matches the arguments\n");
		return 2;
	}
	return failed ? 1 : 0;
}
