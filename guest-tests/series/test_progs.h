/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stand-in for tools/testing/selftests/bpf/test_progs.h, enough to build a
 * prog_tests/<name>.c of the kernel series on its own and run it with
 * runner.c: the whole of test_progs needs LLVM 18+, Debian 12 has clang 14.
 *
 * Provided: test__start_subtest(), test__end_subtest(), test__skip(),
 * test__fail(), test__force_log(), the ASSERT_*() family, CHECK(),
 * CHECK_FAIL() and PRINT_FAIL() with the meaning test_progs gives them:
 * each ASSERT_*() evaluates its arguments once, records a failure of the
 * current subtest (or of the test outside any subtest) and yields true when
 * the check held. What a failed check prints is this runner's own format
 * (file:line, the check's name and the values); it goes to stdout, which the
 * runner hands to the caller as the subtest's log.
 *
 * A test that needs more of test_progs.h fails to compile here, which is the
 * point: the build log then names what is missing.
 */
#ifndef __SERIES_TEST_PROGS_SHIM_H
#define __SERIES_TEST_PROGS_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/param.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <linux/types.h>
#include <linux/bpf.h>
/* tools/include has it (IS_ERR() and friends); system headers do not */
#if __has_include(<linux/err.h>)
#include <linux/err.h>
#endif
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

struct test_env {
	int verbosity;	/* 0 quiet, 1 -v (passing checks too), 2 -vv (libbpf debug) */
};
extern struct test_env env;

bool test__start_subtest(const char *name);
void test__end_subtest(void);
void test__skip(void);
void test__fail(void);
void test__force_log(void);
int test__join_cgroup(const char *path);

/* Records the outcome of one check; returns @ok. */
bool __series_check(bool ok, const char *file, int line, const char *func,
		    const char *name, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Shows where two strings first differ, without dumping long outputs. */
bool __series_check_str(bool ok, const char *file, int line,
			const char *func, const char *name, const char *what,
			const char *actual, const char *expected);

/* Pointer that libbpf would call an error: NULL or in the -errno range. */
static inline bool __series_ptr_is_err(const void *ptr)
{
	return !ptr || (unsigned long)ptr >= (unsigned long)-4095;
}

static inline long __series_ptr_err(const void *ptr)
{
	if (!ptr)
		return -errno;
	if ((unsigned long)ptr >= (unsigned long)-4095)
		return (long)ptr;
	return 0;
}

#define __SERIES_CHECK(ok, name, fmt, ...)				\
	__series_check((ok), __FILE__, __LINE__, __func__, (name),	\
		       fmt, ##__VA_ARGS__)

/* Comparisons: both sides printed as signed and unsigned 64-bit values. */
#define __SERIES_CMP(actual, expected, op, name) ({			\
	__typeof__(actual) __sa = (actual);				\
	__typeof__(expected) __se = (expected);				\
	bool __sok = __sa op __se;					\
	__SERIES_CHECK(__sok, name,					\
		       "want actual " #op " expected: actual %lld (0x%llx), expected %lld (0x%llx)", \
		       (long long)__sa, (unsigned long long)__sa,		\
		       (long long)__se, (unsigned long long)__se);	\
})

#define ASSERT_EQ(actual, expected, name)	__SERIES_CMP(actual, expected, ==, name)
#define ASSERT_NEQ(actual, expected, name)	__SERIES_CMP(actual, expected, !=, name)
#define ASSERT_LT(actual, expected, name)	__SERIES_CMP(actual, expected, <, name)
#define ASSERT_LE(actual, expected, name)	__SERIES_CMP(actual, expected, <=, name)
#define ASSERT_GT(actual, expected, name)	__SERIES_CMP(actual, expected, >, name)
#define ASSERT_GE(actual, expected, name)	__SERIES_CMP(actual, expected, >=, name)

#define ASSERT_TRUE(actual, name) ({					\
	bool __sok = !!(actual);					\
	__SERIES_CHECK(__sok, name, "want true: %s", #actual);		\
})

#define ASSERT_FALSE(actual, name) ({					\
	bool __sok = !(actual);						\
	__SERIES_CHECK(__sok, name, "want false: %s", #actual);		\
})

#define ASSERT_FAIL(fmt, ...)						\
	__SERIES_CHECK(false, "ASSERT_FAIL", fmt, ##__VA_ARGS__)

#define ASSERT_STREQ(actual, expected, name) ({				\
	const char *__sa = (actual), *__se = (expected);		\
	__series_check_str(!strcmp(__sa, __se), __FILE__, __LINE__,	\
			   __func__, (name), "equal strings", __sa, __se); \
})

#define ASSERT_STRNEQ(actual, expected, len, name) ({			\
	const char *__sa = (actual), *__se = (expected);		\
	int __sn = (len);						\
	__series_check_str(!strncmp(__sa, __se, __sn), __FILE__,	\
			   __LINE__, __func__, (name),			\
			   "equal string prefixes", __sa, __se);	\
})

#define ASSERT_HAS_SUBSTR(str, substr, name) ({				\
	const char *__ss = (str), *__sub = (substr);			\
	__series_check_str(strstr(__ss, __sub) != NULL, __FILE__,	\
			   __LINE__, __func__, (name),			\
			   "a substring", __ss, __sub);			\
})

/* res == 0; the value and errno are printed when it is not. */
#define ASSERT_OK(res, name) ({						\
	long long __sr = (res);						\
	int __serr = errno;						\
	bool __sok = __sr == 0;						\
	__SERIES_CHECK(__sok, name, "want 0: got %lld, errno %d (%s)",	\
		       __sr, __serr, strerror(__serr));			\
})

#define ASSERT_ERR(res, name) ({					\
	long long __sr = (res);						\
	bool __sok = __sr < 0;						\
	__SERIES_CHECK(__sok, name, "want < 0: got %lld", __sr);	\
})

#define ASSERT_NULL(ptr, name) ({					\
	const void *__sp = (ptr);					\
	bool __sok = __sp == NULL;					\
	__SERIES_CHECK(__sok, name, "want NULL: got %p", __sp);		\
})

#define ASSERT_OK_PTR(ptr, name) ({					\
	const void *__sp = (ptr);					\
	int __serr = errno;						\
	bool __sok = !__series_ptr_is_err(__sp);			\
	__SERIES_CHECK(__sok, name, "want a pointer: got %p (%ld), errno %d (%s)", \
		       __sp, __series_ptr_err(__sp), __serr, strerror(__serr)); \
})

#define ASSERT_ERR_PTR(ptr, name) ({					\
	const void *__sp = (ptr);					\
	bool __sok = __series_ptr_is_err(__sp);				\
	__SERIES_CHECK(__sok, name, "want an error pointer: got %p", __sp); \
})

#define ASSERT_OK_FD(fd, name) ({					\
	int __sfd = (fd);						\
	int __serr = errno;						\
	bool __sok = __sfd >= 0;					\
	__SERIES_CHECK(__sok, name, "want an fd: got %d, errno %d (%s)",	\
		       __sfd, __serr, strerror(__serr));		\
})

/* Older style checks; CHECK() expects a __u32 duration in scope. */
#define PRINT_FAIL(fmt, ...)						\
	__SERIES_CHECK(false, "PRINT_FAIL", fmt, ##__VA_ARGS__)

#define CHECK_FAIL(condition) ({					\
	bool __sbad = !!(condition);					\
	!__SERIES_CHECK(!__sbad, "CHECK_FAIL", "%s", #condition);	\
})

#define CHECK(condition, tag, fmt, ...) ({				\
	bool __sbad = !!(condition);					\
	(void)duration;							\
	!__SERIES_CHECK(!__sbad, tag, fmt, ##__VA_ARGS__);		\
})

#endif /* __SERIES_TEST_PROGS_SHIM_H */
