// SPDX-License-Identifier: GPL-2.0
/*
 * Description: registered personalities for uringcr to dump. Id 1 carries
 * this process's (root) credentials; id 2 is registered and unregistered
 * again (a hole, and the next id moves on to 4); id 3 is registered by a
 * thread that first changed its own credentials with raw syscalls (glibc
 * would change every thread's): groups 10,20,30, gids 100/101/102 and
 * uids 1000/1001/1002 (which also drops its capabilities). "expect pers"
 * gives each id's ids and groups. After "go" a NOP under each personality
 * still completes. test_uringcr.py::test_dump_personalities checks it.
 *
 *   cr_pers resume DIR
 *
 * restores such an image into a new process; both run the same
 * continuation under the personalities ("result" lines).
 *
 *   cr_pers userns
 *
 * is another ring: id 1 this process's credentials, id 2 registered by a
 * child in a user namespace of its own ("expect userns inum=<its inode>"),
 * which the personality keeps alive. A restore outside that namespace must
 * fail and leave nothing (cr_pers userns resume DIR tries one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"
#include "owner.h"
#include "resume.h"

static struct io_uring ring;

static void *other_creds(void *arg)
{
	gid_t groups[3] = { 10, 20, 30 };
	int *id = arg;

	*id = -1;
	if (syscall(SYS_setgroups, 3, groups) || syscall(SYS_setresgid, 100, 101, 102) ||
	    syscall(SYS_setresuid, 1000, 1001, 1002))
		return NULL;
	*id = io_uring_register_personality(&ring);
	return NULL;
}

static int nop_as(int id)
{
	struct io_uring_sqe *sqe = get_sqe(&ring);
	int res;

	if (!sqe)
		return -1;
	io_uring_prep_nop(sqe);
	sqe->personality = id;
	return ring_submit_wait(&ring, &res) ? -1 : res;
}

/* IORING_OP_OPENAT under personality @id: the fd, or -errno */
static int open_as(int id, const char *path, int flags)
{
	struct io_uring_sqe *sqe = get_sqe(&ring);
	int res;

	if (!sqe)
		return -1;
	io_uring_prep_openat(sqe, AT_FDCWD, path, flags, 0600);
	sqe->personality = id;
	return ring_submit_wait(&ring, &res) ? -1 : res;
}

/*
 * The continuation, the same in the resumed original and in the restored
 * copy (@tag names the file each creates): NOPs under each id (2 is gone),
 * a root-only file opened as 1 and refused as 3, and a file created as 3,
 * which must belong to its fsuid and fsgid.
 */
static enum t_exit finish(const char *tag)
{
	char secret[64], made[64];
	struct stat st;
	int fd;

	snprintf(secret, sizeof(secret), "/dev/shm/cr_pers.secret");
	snprintf(made, sizeof(made), "/dev/shm/cr_pers.%s", tag);
	fd = open(secret, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return t_fail("the root-only file");
	close(fd);
	result("nop id=1 res=%d", nop_as(1));
	result("nop id=2 res=%d", nop_as(2));
	result("nop id=3 res=%d", nop_as(3));
	fd = open_as(1, secret, O_RDONLY);
	result("open-secret id=1 ok=%d", fd >= 0);
	if (fd >= 0)
		close(fd);
	result("open-secret id=3 res=%d", open_as(3, secret, O_RDONLY));
	unlink(made);
	fd = open_as(3, made, O_RDWR | O_CREAT | O_EXCL);
	if (fd < 0 || fstat(fd, &st))
		return t_fail("creating a file under personality 3");
	result("created id=3 uid=%u gid=%u", st.st_uid, st.st_gid);
	close(fd);
	unlink(made);
	if (nop_as(1) || nop_as(3) || nop_as(2) != -EINVAL)
		return t_fail("NOPs under the personalities after the dump");
	return t_pass();
}

/*
 * A child in a new user namespace registers a personality on the ring it
 * inherited: the id (or -1), and its namespace's inode in *@inum.
 */
static int register_in_userns(unsigned long *inum)
{
	int pipefd[2], status, id = -1;
	unsigned long got = 0;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		struct stat st;

		close(pipefd[0]);
		if (unshare(CLONE_NEWUSER) || stat("/proc/self/ns/user", &st))
			_exit(255);
		got = st.st_ino;
		id = io_uring_register_personality(&ring);
		if (write(pipefd[1], &got, sizeof(got)) != sizeof(got))
			_exit(255);
		_exit(id > 0 && id < 255 ? id : 255);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &got, sizeof(got)) != sizeof(got))
		got = 0;
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) != 255)
		id = WEXITSTATUS(status);
	*inum = got;
	return got ? id : -1;
}

static enum t_exit userns_main(int argc, char *argv[])
{
	struct io_uring_params p;
	unsigned long inum;
	int id1, id2;

	if (argc > 3 && !strcmp(argv[2], "resume")) {
		if (resume_ring(argv[3], 0, &ring))
			return t_fail("restoring the image");
		return t_pass();
	}
	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	id1 = io_uring_register_personality(&ring);
	id2 = register_in_userns(&inum);
	if (id1 != 1 || id2 != 2) {
		t_diag("personality ids %d %d", id1, id2);
		return t_fail("register personalities");
	}
	expect_ring("pers", &ring, &p);
	expect("userns", "id=2 inum=%lu", inum);
	if (owner_wait())
		return t_fail("no go");
	return nop_as(1) || nop_as(2) ? t_fail("NOPs under the personalities") : t_pass();
}

int main(int argc, char *argv[])
{
	struct io_uring_params p;
	gid_t groups[64];
	char list[512] = "";
	int id1, id2, id3, n, i;
	pthread_t thr;

	t_start("cr_pers", argc, argv);
	if (argc > 1 && !strcmp(argv[1], "userns"))
		return userns_main(argc, argv);
	if (argc > 2 && !strcmp(argv[1], "resume")) {
		/* cr_pers resume DIR */
		if (resume_ring(argv[2], 0, &ring))
			return t_fail("restoring the image");
		return finish("copy");
	}
	if (ring_init(&ring, &p, 8, 0, 0, 0))
		return t_fail("ring setup");
	id1 = io_uring_register_personality(&ring);
	id2 = io_uring_register_personality(&ring);
	if (pthread_create(&thr, NULL, other_creds, &id3) || pthread_join(thr, NULL))
		return t_fail("thread");
	if (id1 != 1 || id2 != 2 || id3 != 3) {
		t_diag("personality ids %d %d %d", id1, id2, id3);
		return t_fail("register personalities");
	}
	if (io_uring_unregister_personality(&ring, id2))
		return t_fail("unregister personality 2");
	n = getgroups(64, groups);
	for (i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u", i ? "," : "",
			 groups[i]);
	expect_ring("pers", &ring, &p);
	expect("personalities", "next=4 used=2");
	expect("pers", "id=1 uids=%u,%u,%u,%u gids=%u,%u,%u,%u groups=%s", getuid(), geteuid(),
	       getuid(), geteuid(), getgid(), getegid(), getgid(), getegid(), n ? list : "-");
	expect("pers", "id=3 uids=1000,1001,1002,1001 gids=100,101,102,101 groups=10,20,30");
	if (owner_wait())
		return t_fail("no go");
	return finish("original");
}
