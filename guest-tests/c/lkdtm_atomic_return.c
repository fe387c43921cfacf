// SPDX-License-Identifier: GPL-2.0
/*
 * Description: write an LKDTM crash type that returns to user space in
 * atomic context (SPINLOCKUP: a spinlock held, so preempt_count stays raised),
 * then get the task back to a sane state before anything else can happen.
 *
 * Usage: lkdtm_atomic_return DIRECT CRASHTYPE
 *
 * With preempt_count raised every user page fault fails (SIGSEGV), and an exit
 * from there runs exit_mmap() in atomic context: with need_resched set,
 * zap_pte_range() breaks out and zap_pmd_range() retries the same range for
 * good (cond_resched() cannot run), a soft lockup that keeps the VM from
 * powering off (seen once in about a dozen boots, when Python was the writer:
 * its interpreter shutdown faulted on libpython pages). So the write is
 * followed at once by sched_yield(), whose schedule() reports "scheduling while
 * atomic" and resets preempt_count, and by _exit(): no page is touched that
 * the first sched_yield() call did not fault in already.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
	ssize_t ret;
	size_t len;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s DIRECT CRASHTYPE\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	len = strlen(argv[2]);
	/* fault in (and bind) everything the atomic part below runs */
	sched_yield();
	ret = write(fd, argv[2], len);
	sched_yield();
	_exit(ret == (ssize_t)len ? 0 : 1);
}
