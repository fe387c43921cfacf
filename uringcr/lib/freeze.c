// SPDX-License-Identifier: GPL-2.0
/*
 * Freezing the process for the dump, and always leaving it as it was.
 *
 * SIGSTOP (default): the process is stopped as by a job-control stop, and
 * SIGCONT'ed afterwards unless it was stopped before. A stopped task runs
 * no task_work, so completions io_uring queues to it (most that are not
 * inline) wait until it runs again: the dump's drain thaws briefly when it
 * must (drain.c).
 *
 * cgroup v2 freezer (--freeze=cgroup): cgroup.freeze of the process's
 * cgroup. A frozen task still runs its task_work, so completions arrive
 * while it is frozen.
 *
 * A guardian process, forked before the freeze, holds a pipe from the
 * dumper: if the dumper dies before it thaws (SIGKILL included), the
 * guardian reads EOF and thaws the process itself. It also watches the
 * dumper: a dumper that is itself stopped for STUCK_MS (another dumper or
 * a debugger froze it; two dumpers freezing each other would otherwise
 * stay stopped for ever) gets its freeze lifted, and the dumper, once it
 * runs again, fails instead of writing an image of a running process
 * (ucr_freeze_broken()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target.h"

#define STOP_WAIT_MS	10000
#define STUCK_MS	500

static int send_sig(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The state letter of every thread that is not an io_uring thread. */
static int thread_states(pid_t pid, int *running, int *stopped, int *total)
{
	char dir[64], path[128], buf[512];
	struct dirent *de;
	DIR *d;

	*running = *stopped = *total = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *p;
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/stat", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* "tid (comm) S ...": comm may hold anything, so take the last ')' */
		p = strrchr(buf, ')');
		if (!p || p[1] != ' ')
			continue;
		if (strstr(buf, "(iou-wrk-") || strstr(buf, "(iou-sqp-"))
			continue;	/* io_uring's own threads */
		++*total;
		if (p[2] == 'T' || p[2] == 't')
			++*stopped;
		else
			++*running;
	}
	closedir(d);
	return 0;
}

static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int write_small(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int cgroup_of(pid_t pid, char *out, size_t size)
{
	char path[64], line[4096];
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, size, "/sys/fs/cgroup%s", line + 3);
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

static int cgroup_frozen(const char *dir)
{
	char path[4200], buf[512];

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	if (read_small(path, buf, sizeof(buf)))
		return -1;
	return strstr(buf, "frozen 1") != NULL;
}

static int do_thaw(struct ucr_freezer *f)
{
	char path[4200];

	if (f->was_frozen)
		return 0;
	if (f->mode == UCR_FREEZE_SIGSTOP)
		return send_sig(f->pidfd, SIGCONT) && errno != ESRCH ? -errno : 0;
	if (f->mode == UCR_FREEZE_CGROUP) {
		snprintf(path, sizeof(path), "%s/cgroup.freeze", f->cgroup);
		return write_small(path, "0");
	}
	return 0;
}

/* 1: process @pid is stopped (job control or ptrace), 0: not, -1: gone */
static int is_stopped(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_small(path, buf, sizeof(buf)))
		return -1;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	return p[2] == 'T' || p[2] == 't';
}

/*
 * The guardian: thaws unless the dumper says it did ('T') first; lifts the
 * freeze and tells the dumper ('B' on @bfd) when the dumper stays stopped.
 */
static void guardian(struct ucr_freezer *f, int rfd, int bfd, pid_t dumper)
{
	struct pollfd pfd = { .fd = rfd, .events = POLLIN };
	uint64_t stopped_since = 0;
	bool lifted = false;
	char c;
	ssize_t n;

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (;;) {
		int ret = poll(&pfd, 1, 50);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret > 0)
			break;
		if (lifted || is_stopped(dumper) != 1) {
			stopped_since = 0;
			continue;
		}
		if (!stopped_since) {
			stopped_since = ucr_now_us();
		} else if (ucr_now_us() - stopped_since > STUCK_MS * 1000ULL) {
			do_thaw(f);
			lifted = true;
			n = write(bfd, "B", 1);
			(void)n;
		}
	}
	do {
		n = read(rfd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 1 && c == 'T')
		_exit(0);
	do_thaw(f);
	_exit(0);
}

bool ucr_freeze_broken(struct ucr_freezer *f)
{
	char c;

	if (f->broken)
		return true;
	if (f->broken_fd >= 0 && read(f->broken_fd, &c, 1) == 1)
		f->broken = true;
	return f->broken;
}

static int start_guardian(struct ucr_freezer *f, struct ucr_err *err)
{
	pid_t child, dumper = getpid();
	int p[2], b[2];

	if (pipe2(p, O_CLOEXEC))
		return ucr_errf(err, -errno, "pipe: %s", strerror(errno));
	if (pipe2(b, O_CLOEXEC | O_NONBLOCK)) {
		close(p[0]);
		close(p[1]);
		return ucr_errf(err, -errno, "pipe: %s", strerror(errno));
	}
	child = fork();
	if (child < 0) {
		close(p[0]);
		close(p[1]);
		close(b[0]);
		close(b[1]);
		return ucr_errf(err, -errno, "fork of the guardian: %s", strerror(errno));
	}
	if (!child) {
		close(p[1]);
		close(b[0]);
		guardian(f, p[0], b[1], dumper);
	}
	close(p[0]);
	close(b[1]);
	f->guardian = child;
	f->guard_fd = p[1];
	/* a broken freeze stays broken across the drain's thaw and refreeze */
	if (f->broken_fd >= 0)
		close(f->broken_fd);
	f->broken_fd = b[0];
	return 0;
}

static void stop_guardian(struct ucr_freezer *f, bool thawed)
{
	if (f->guardian <= 0)
		return;
	if (thawed) {
		/* if the byte does not get through, it thaws again: harmless */
		ssize_t n = write(f->guard_fd, "T", 1);

		(void)n;
	}
	close(f->guard_fd);
	waitpid(f->guardian, NULL, 0);
	f->guardian = 0;
	ucr_freeze_broken(f);
}

int ucr_freeze(struct ucr_freezer *f, struct ucr_target *t, enum ucr_freeze mode,
	       struct ucr_err *err)
{
	int running, stopped, total, ret;
	char self[4096], path[4200], buf[16];
	uint64_t deadline;

	bool broken = f->broken;
	int broken_fd = f->broken_fd;
	uint64_t first_request = f->first_request, first_frozen = f->first_frozen;
	uint64_t frozen_us = f->frozen_us;

	/* a refreeze (the drain) keeps what the guardian said and the times */
	memset(f, 0, sizeof(*f));
	f->broken = broken;
	f->broken_fd = broken_fd;
	f->first_request = first_request;
	f->first_frozen = first_frozen;
	f->frozen_us = frozen_us;
	f->mode = mode;
	f->pid = t->pid;
	f->pidfd = t->pidfd;
	f->guard_fd = -1;
	f->t_request = ucr_now_us();
	if (mode == UCR_FREEZE_NONE) {
		f->t_frozen = f->t_request;
		f->first_request = f->first_frozen = f->t_request;
		return 0;
	}
	if (mode == UCR_FREEZE_CGROUP) {
		ret = cgroup_of(t->pid, f->cgroup, sizeof(f->cgroup));
		if (ret)
			return ucr_errf(err, ret, "process %d: no cgroup v2 membership in /proc/%d/cgroup: use --freeze=sigstop",
					t->pid, t->pid);
		if (!strcmp(f->cgroup, "/sys/fs/cgroup/"))
			return ucr_errf(err, -EINVAL,
					"process %d is in the root cgroup, which cannot be frozen: move it into a cgroup of its own, or use --freeze=sigstop",
					t->pid);
		if (!cgroup_of(getpid(), self, sizeof(self)) && !strcmp(self, f->cgroup))
			return ucr_errf(err, -EINVAL,
					"process %d is in uringcr's own cgroup %s: freezing it would freeze uringcr; run one of them in another cgroup",
					t->pid, f->cgroup);
		snprintf(path, sizeof(path), "%s/cgroup.freeze", f->cgroup);
		if (read_small(path, buf, sizeof(buf)))
			return ucr_errf(err, -errno, "%s: %s: the cgroup v2 freezer is not available; use --freeze=sigstop",
					path, strerror(errno));
		f->was_frozen = buf[0] == '1';
	} else {
		ret = thread_states(t->pid, &running, &stopped, &total);
		if (ret)
			return ucr_errf(err, ret, "process %d: reading its threads: %s", t->pid, strerror(-ret));
		f->was_frozen = total && !running;
	}
	if (f->was_frozen) {
		f->t_frozen = ucr_now_us();
		f->first_request = f->first_frozen = f->t_frozen;
		return 0;
	}
	ret = start_guardian(f, err);
	if (ret)
		return ret;
	if (mode == UCR_FREEZE_CGROUP)
		ret = write_small(path, "1");
	else
		ret = send_sig(t->pidfd, SIGSTOP) ? -errno : 0;
	if (ret) {
		stop_guardian(f, false);
		if (ret == -ESRCH)
			return ucr_errf(err, ret, "process %d exited before it could be frozen", t->pid);
		return ucr_errf(err, ret, "process %d: freezing it: %s", t->pid, strerror(-ret));
	}
	f->frozen = true;
	deadline = ucr_now_us() + STOP_WAIT_MS * 1000ULL;
	for (unsigned int ms = 1;; ms = ms < 32 ? 2 * ms : ms) {
		bool done;

		if (mode == UCR_FREEZE_CGROUP) {
			done = cgroup_frozen(f->cgroup) == 1;
		} else {
			ret = thread_states(t->pid, &running, &stopped, &total);
			if (ret) {
				ucr_thaw(f, NULL);
				return ucr_errf(err, -ESRCH, "process %d exited while being frozen", t->pid);
			}
			done = !running;
		}
		if (done)
			break;
		if (ucr_freeze_broken(f)) {
			ucr_thaw(f, NULL);
			return ucr_errf(err, -EAGAIN,
					"process %d: uringcr itself was stopped for over half a second while freezing it (another dumper or a debugger stopped uringcr), so its guardian resumed the process; it was not dumped",
					t->pid);
		}
		if (ucr_now_us() > deadline) {
			ucr_thaw(f, NULL);
			return ucr_errf(err, -ETIMEDOUT,
					"process %d did not freeze within %d ms (a thread in uninterruptible sleep?); it was resumed",
					t->pid, STOP_WAIT_MS);
		}
		ucr_pause_ms(ms);
	}
	f->t_frozen = ucr_now_us();
	if (!f->first_frozen) {
		f->first_request = f->t_request;
		f->first_frozen = f->t_frozen;
	}
	return 0;
}

int ucr_thaw(struct ucr_freezer *f, struct ucr_err *err)
{
	int ret = 0;

	if (f->frozen) {
		ret = do_thaw(f);
		f->frozen = false;
		f->frozen_us += ucr_now_us() - f->t_frozen;
	}
	stop_guardian(f, !ret);
	if (ret)
		return ucr_errf(err, ret, "process %d: resuming it: %s", f->pid, strerror(-ret));
	return 0;
}

void ucr_freezer_init(struct ucr_freezer *f)
{
	memset(f, 0, sizeof(*f));
	f->guard_fd = -1;
	f->broken_fd = -1;
}

void ucr_freezer_fini(struct ucr_freezer *f)
{
	if (f->broken_fd >= 0)
		close(f->broken_fd);
	f->broken_fd = -1;
}
