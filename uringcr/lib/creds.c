// SPDX-License-Identifier: GPL-2.0
/*
 * A restored ring's personalities (IORING_REGISTER_PERSONALITY). The kernel
 * registers the calling task's credentials under the next id of a cyclic
 * counter (xa_alloc_cyclic() from ctx->pers_next), and no UAPI chooses the
 * id or the credentials, so the counter is walked from 1 to the image's
 * pers_next: an id of the image is registered by a child forked for it
 * that first takes exactly that personality's credentials (or by the
 * caller when they are its own), an id the image lacks is registered and
 * unregistered again. The ring is still IORING_SETUP_R_DISABLED, so
 * SINGLE_ISSUER does not yet keep the children out.
 *
 * The image holds the initial user namespace's ids: in another user
 * namespace (it must be the image's) they are mapped through
 * /proc/self/{uid,gid}_map, whose outer ids are the kernel's only when
 * that namespace is a child of the initial one.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#include "uapi.h"

#include "creds.h"

#define USERNS_INIT_INO	0xEFFFFFFDU	/* PROC_USER_INIT_INO */
#define PERS_ID_MAX	65535		/* XA_LIMIT(0, USHRT_MAX) */

enum { C_INH, C_PRM, C_EFF, C_BND, C_AMB, C_NR };

/* Credentials in the caller's ids; uid[] and gid[]: real, effective, saved, fs */
struct creds {
	uint32_t uid[4], gid[4];
	uint64_t cap[C_NR];
	uint32_t securebits;
	int ngroups;		/* -1: more than UCR_GROUPS_MAX, or unreadable */
	uint32_t groups[UCR_GROUPS_MAX];
};

enum step {
	ST_CAP_INH, ST_SECBITS_TMP, ST_BSET_RAISE, ST_BSET, ST_GROUPS, ST_GIDS,
	ST_UIDS, ST_FSIDS, ST_CAPS, ST_AMBIENT, ST_SECBITS, ST_CAPS_FINAL,
	ST_VERIFY, ST_REGISTER, ST_NR
};

static const struct {
	const char *what;
	const char *fix;
} steps[ST_NR] = {
	[ST_CAP_INH] = { "setting the inheritable capabilities",
		"restore as root: new inheritable capabilities need CAP_SETPCAP and the full bounding set" },
	[ST_SECBITS_TMP] = { "keeping capabilities across uid changes (PR_SET_SECUREBITS)",
		"restore as root: taking another personality's credentials needs CAP_SETPCAP, CAP_SETUID and CAP_SETGID, and no locked securebits" },
	[ST_BSET_RAISE] = { "checking the bounding set",
		"the personality's bounding set has capabilities the caller's lacks (or this kernel does not know): restore from a process with the full bounding set" },
	[ST_BSET] = { "dropping bounding-set capabilities",
		"restore as root: dropping from the bounding set needs CAP_SETPCAP" },
	[ST_GROUPS] = { "setting groups",
		"restore as root: setting supplementary groups needs CAP_SETGID (and \"allow\" in /proc/self/setgroups in a user namespace)" },
	[ST_GIDS] = { "setting gids",
		"restore as root: setting another gid needs CAP_SETGID" },
	[ST_UIDS] = { "setting uids",
		"restore as root: setting another uid needs CAP_SETUID" },
	[ST_FSIDS] = { "setting fsuid and fsgid",
		"restore as root: setting another fsuid or fsgid needs CAP_SETUID and CAP_SETGID" },
	[ST_CAPS] = { "setting capabilities",
		"restore as root: the caller's permitted capabilities must hold the personality's" },
	[ST_AMBIENT] = { "raising ambient capabilities",
		"ambient capabilities must be permitted and inheritable, and the caller without SECBIT_NO_CAP_AMBIENT_RAISE" },
	[ST_SECBITS] = { "setting securebits",
		"restore as root: securebits need CAP_SETPCAP, and the caller's may not be locked" },
	[ST_CAPS_FINAL] = { "setting the final capabilities",
		"report this: dropping capabilities should not fail" },
	[ST_VERIFY] = { "verifying the credentials",
		"report this: /proc/self/status shows other credentials than the image's" },
	[ST_REGISTER] = { "registering (IORING_REGISTER_PERSONALITY)",
		"restore into a new ring that is still disabled (IORING_SETUP_R_DISABLED)" },
};

/* What a child reports through its pipe */
struct child_msg {
	int id;			/* registered, or -1 */
	int step;
	int err;		/* errno of the step that failed, 0 if none */
	char field[16];		/* ST_VERIFY: what differs */
};

static int sys_pers(int fd, unsigned int op, unsigned int id)
{
	int ret = syscall(__NR_io_uring_register, fd, op, NULL, id);

	return ret < 0 ? -errno : ret;
}

/* The file into @buf, NUL-terminated; async-signal-safe (the children's too) */
static int read_file(const char *path, char *buf, size_t size)
{
	ssize_t n = 0, len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len < (ssize_t)size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	if (n < 0)
		n = -errno;
	close(fd);
	buf[len] = '\0';
	return n < 0 ? n : len;
}

static int read_status(struct creds *c)
{
	static const char *const caps[C_NR] = {
		"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"
	};
	char buf[16384], *line, *end, *p, *q;
	int i, seen = 0, ret;

	c->ngroups = -1;
	ret = read_file("/proc/self/status", buf, sizeof(buf));
	if (ret < 0)
		return ret;
	for (line = buf; *line; line = end) {
		end = strchr(line, '\n');
		if (!end)
			break;		/* cut short: the checks below fail */
		*end++ = '\0';
		if (!strncmp(line, "Uid:", 4))
			seen += sscanf(line + 4, "%u %u %u %u", &c->uid[0], &c->uid[1],
				       &c->uid[2], &c->uid[3]) == 4;
		else if (!strncmp(line, "Gid:", 4))
			seen += sscanf(line + 4, "%u %u %u %u", &c->gid[0], &c->gid[1],
				       &c->gid[2], &c->gid[3]) == 4;
		else if (!strncmp(line, "Groups:", 7)) {
			seen++;
			c->ngroups = 0;
			for (p = line + 7; *p; p = q) {
				while (*p == ' ' || *p == '\t')
					p++;
				if (!*p)
					break;
				if (c->ngroups == UCR_GROUPS_MAX) {
					c->ngroups = -1;
					break;
				}
				c->groups[c->ngroups++] = strtoul(p, &q, 10);
				if (q == p) {
					c->ngroups = -1;
					break;
				}
			}
		}
		for (i = 0; i < C_NR; i++) {
			if (!strncmp(line, caps[i], 7)) {
				c->cap[i] = strtoull(line + 7, NULL, 16);
				seen++;
			}
		}
	}
	return seen == 3 + C_NR ? 0 : -EPROTO;
}

static void sort_u32(uint32_t *v, int n)
{
	int i, j;

	for (i = 1; i < n; i++) {
		uint32_t x = v[i];

		for (j = i; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* What differs between @a and @b, or NULL */
static const char *creds_diff(const struct creds *a, const struct creds *b)
{
	static const char *const caps[C_NR] = {
		"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"
	};
	uint32_t ga[UCR_GROUPS_MAX], gb[UCR_GROUPS_MAX];
	int i;

	if (memcmp(a->uid, b->uid, sizeof(a->uid)))
		return "Uid";
	if (memcmp(a->gid, b->gid, sizeof(a->gid)))
		return "Gid";
	for (i = 0; i < C_NR; i++)
		if (a->cap[i] != b->cap[i])
			return caps[i];
	if (a->securebits != b->securebits)
		return "securebits";
	if (a->ngroups < 0 || a->ngroups != b->ngroups)
		return "Groups";
	memcpy(ga, a->groups, a->ngroups * sizeof(ga[0]));
	memcpy(gb, b->groups, b->ngroups * sizeof(gb[0]));
	sort_u32(ga, a->ngroups);
	sort_u32(gb, b->ngroups);
	return memcmp(ga, gb, a->ngroups * sizeof(ga[0])) ? "Groups" : NULL;
}

static int caps_get(uint64_t *prm)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

static int caps_set(uint64_t inh, uint64_t prm, uint64_t eff)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ eff >> 32, prm >> 32, inh >> 32 },
	};

	return syscall(SYS_capset, &h, d);
}

#define TRY(st, expr) do {			\
		*step = (st);			\
		if ((expr) < 0)			\
			return -errno;		\
	} while (0)
#define FAIL(st, e) do {			\
		*step = (st);			\
		return -(errno = (e));		\
	} while (0)

/*
 * The child's way from the caller's credentials to @t's: capabilities are
 * kept over the id changes (SECBIT_NO_SETUID_FIXUP), CAP_SETPCAP until the
 * final securebits, and dropped last.
 */
static int become(const struct creds *t, int last, int *step)
{
	/* (SECBIT_KEEP_CAPS would add nothing, and may be locked off) */
	const unsigned long keep = SECBIT_NO_SETUID_FIXUP;
	uint64_t prm, extra = 0, all = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
	long sb = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	int c, in;

	TRY(ST_SECBITS_TMP, sb);
	/* inheritable first, while the bounding set is full; effective = permitted */
	TRY(ST_CAP_INH, caps_get(&prm));
	TRY(ST_CAP_INH, caps_set(t->cap[C_INH], prm, prm));
	if (((unsigned long)sb & keep) != keep)
		TRY(ST_SECBITS_TMP, prctl(PR_SET_SECUREBITS, sb | keep, 0, 0, 0));
	sb |= keep;
	if (t->cap[C_BND] & ~all)
		FAIL(ST_BSET_RAISE, EINVAL);
	for (c = 0; c <= last; c++) {
		TRY(ST_BSET_RAISE, in = prctl(PR_CAPBSET_READ, c, 0, 0, 0));
		if ((t->cap[C_BND] >> c & 1) && !in)
			FAIL(ST_BSET_RAISE, EPERM);
		if (!(t->cap[C_BND] >> c & 1) && in)
			TRY(ST_BSET, prctl(PR_CAPBSET_DROP, c, 0, 0, 0));
	}
	TRY(ST_GROUPS, setgroups(t->ngroups, (const gid_t *)t->groups));
	TRY(ST_GIDS, setresgid(t->gid[0], t->gid[1], t->gid[2]));
	TRY(ST_UIDS, setresuid(t->uid[0], t->uid[1], t->uid[2]));
	setfsgid(t->gid[3]);
	setfsuid(t->uid[3]);
	/* an invalid id changes nothing and returns the current one */
	if ((uint32_t)setfsgid(-1) != t->gid[3] || (uint32_t)setfsuid(-1) != t->uid[3])
		FAIL(ST_FSIDS, EPERM);
	if ((unsigned long)sb != t->securebits)
		extra = prm & (1ULL << CAP_SETPCAP);
	TRY(ST_CAPS, caps_set(t->cap[C_INH], t->cap[C_PRM] | extra,
			      t->cap[C_EFF] | extra));
	TRY(ST_AMBIENT, prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	for (c = 0; c < 64; c++)
		if (t->cap[C_AMB] >> c & 1)
			TRY(ST_AMBIENT, prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0));
	if ((unsigned long)sb != t->securebits)
		TRY(ST_SECBITS, prctl(PR_SET_SECUREBITS, t->securebits, 0, 0, 0));
	TRY(ST_CAPS_FINAL, caps_set(t->cap[C_INH], t->cap[C_PRM], t->cap[C_EFF]));
	return 0;
}

static __attribute__((noreturn)) void child(int ring_fd, const struct creds *t,
					    int last, int wfd)
{
	struct child_msg m = { .id = -1 };
	struct creds now;
	const char *diff;
	int ret;

	ret = become(t, last, &m.step);
	if (!ret) {
		m.step = ST_VERIFY;
		ret = read_status(&now);
		now.securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
		if (!ret && (diff = creds_diff(t, &now))) {
			snprintf(m.field, sizeof(m.field), "%s", diff);
			ret = -EPROTO;
		}
	}
	if (!ret) {
		m.step = ST_REGISTER;
		m.id = sys_pers(ring_fd, IORING_REGISTER_PERSONALITY, 0);
		ret = m.id < 0 ? m.id : 0;
	}
	m.err = -ret;
	while (write(wfd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* Registers @t's personality from a child; -ECHILD: the child sent nothing. */
static int run_child(int ring_fd, const struct creds *t, int last,
		     struct child_msg *m)
{
	ssize_t n;
	pid_t pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		n = -errno;
		close(p[0]);
		close(p[1]);
		return n;
	}
	if (!pid) {
		close(p[0]);
		child(ring_fd, t, last, p[1]);
	}
	close(p[1]);
	do
		n = read(p[0], m, sizeof(*m));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(*m) || m->step < 0 || m->step >= ST_NR)
		return -ECHILD;
	return 0;
}

/* @kid, an id of the initial namespace, in the caller's namespace */
static int xlate(bool init_ns, bool gid, uint32_t kid, uint32_t *id,
		 uint32_t pers_id, struct ucr_err *err)
{
	unsigned int in, out, count;
	int ret = -EOVERFLOW;
	FILE *f;

	*id = kid;
	if (init_ns)
		return 0;
	f = fopen(gid ? "/proc/self/gid_map" : "/proc/self/uid_map", "re");
	if (!f)
		ret = -errno;
	while (f && fscanf(f, "%u %u %u", &in, &out, &count) == 3) {
		if (kid >= out && kid - out < count) {
			*id = in + (kid - out);
			ret = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	if (ret)
		return ucr_errf(err, ret,
				"personality %u: %s %u has no id in this user namespace (%s): restore where the image's ids are mapped",
				pers_id, gid ? "gid" : "uid", kid, strerror(-ret));
	return 0;
}

static int want_creds(const struct ucr_pers_rec *p, bool init_ns,
		      struct creds *c, struct ucr_err *err)
{
	const uint32_t uid[4] = { p->uid, p->euid, p->suid, p->fsuid };
	const uint32_t gid[4] = { p->gid, p->egid, p->sgid, p->fsgid };
	int i, ret = 0;

	for (i = 0; i < 4 && !ret; i++)
		ret = xlate(init_ns, false, uid[i], &c->uid[i], p->id, err) ?:
		      xlate(init_ns, true, gid[i], &c->gid[i], p->id, err);
	for (i = 0; i < p->ngroups && !ret; i++)
		ret = xlate(init_ns, true, p->groups[i], &c->groups[i], p->id, err);
	c->ngroups = p->ngroups;
	c->cap[C_INH] = p->cap_inheritable;
	c->cap[C_PRM] = p->cap_permitted;
	c->cap[C_EFF] = p->cap_effective;
	c->cap[C_BND] = p->cap_bset;
	c->cap[C_AMB] = p->cap_ambient;
	c->securebits = p->securebits;
	return ret;
}

static int check(const struct ucr_pers_rec *pers, uint32_t nr,
		 uint32_t pers_next, struct ucr_err *err)
{
	uint32_t i;

	if (nr && !pers)
		return ucr_errf(err, -EINVAL, "%u personalities but no records", nr);
	if (pers_next == 1 || pers_next > PERS_ID_MAX + 1)
		return ucr_errf(err, -EINVAL,
				"the ring's next personality id %u is not one the kernel makes (0, or 2 to %u)",
				pers_next, PERS_ID_MAX + 1);
	for (i = 0; i < nr; i++) {
		if (!pers[i].id || pers[i].id > PERS_ID_MAX ||
		    (i && pers[i].id <= pers[i - 1].id))
			return ucr_errf(err, -EINVAL,
					"personality record %u has id %u: ids must be 1 to %u and strictly increasing",
					i, pers[i].id, PERS_ID_MAX);
		if (pers[i].ngroups < 0 || pers[i].ngroups > UCR_GROUPS_MAX)
			return ucr_errf(err, -EINVAL,
					"personality %u has %d supplementary groups: a record holds 0 to %d",
					pers[i].id, pers[i].ngroups, UCR_GROUPS_MAX);
	}
	if (nr && pers_next <= pers[nr - 1].id)
		return ucr_errf(err, -EOPNOTSUPP,
				"the ring's next personality id is %u, not above personality %u: its id counter wrapped past %u, which a restore cannot reproduce",
				pers_next, pers[nr - 1].id, PERS_ID_MAX);
	return 0;
}

static int cap_last(void)
{
	char buf[16];
	int ret = read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof(buf));

	if (ret < 0)
		return ret;
	ret = atoi(buf);
	return ret >= 0 && ret < 64 ? ret : -EPROTO;
}

/* Everything before any registering: the records, the namespace, the caller */
static int prepare(const struct ucr_pers_rec *pers, uint32_t nr,
		   struct creds *want, struct creds *self, int *last,
		   struct ucr_err *err)
{
	struct stat st;
	uint32_t i;
	int ret;

	if (stat("/proc/self/ns/user", &st)) {
		/* without CONFIG_USER_NS there is one: the initial namespace */
		if (errno != ENOENT)
			return ucr_errf(err, -errno, "reading /proc/self/ns/user: %s",
					strerror(errno));
		st.st_ino = USERNS_INIT_INO;
	}
	for (i = 0; i < nr; i++) {
		if (pers[i].userns_inum != st.st_ino)
			return ucr_errf(err, -EOPNOTSUPP,
					"personality %u belongs to user namespace %u, the restore runs in %lu: restore from a process of the image's user namespace",
					pers[i].id, pers[i].userns_inum, (unsigned long)st.st_ino);
		ret = want_creds(&pers[i], st.st_ino == USERNS_INIT_INO, &want[i], err);
		if (ret)
			return ret;
	}
	*last = cap_last();
	if (*last < 0)
		return ucr_errf(err, *last, "reading /proc/sys/kernel/cap_last_cap: %s",
				strerror(-*last));
	/* unreadable or too many groups: no record matches, children register all */
	if (read_status(self))
		self->ngroups = -1;
	self->securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	return 0;
}

int ucr_pers_restore(int ring_fd, const struct ucr_pers_rec *pers, uint32_t nr,
		     uint32_t pers_next, uint64_t *calls, struct ucr_err *err)
{
	struct creds self, *want = NULL;
	struct child_msg m;
	uint64_t ncalls = 0;
	uint32_t i = 0, id;
	int last = 0, got, ret;

	ret = check(pers, nr, pers_next, err);
	if (ret)
		return ret;
	if (nr) {
		want = calloc(nr, sizeof(*want));
		if (!want)
			return ucr_errf(err, -ENOMEM, "out of memory for %u personalities", nr);
		ret = prepare(pers, nr, want, &self, &last, err);
	}
	for (id = 1; !ret && id < pers_next; id++) {
		bool gap = i == nr || pers[i].id != id;

		if (gap || !creds_diff(&want[i], &self)) {
			got = sys_pers(ring_fd, IORING_REGISTER_PERSONALITY, 0);
			ncalls++;
			if (got < 0) {
				ret = ucr_errf(err, got,
					       gap ? "registering the unused personality id %u (to move the ring's id counter on): %s; %s" :
					       "registering personality %u with the caller's own credentials: %s; %s",
					       id, strerror(-got), steps[ST_REGISTER].fix);
				break;
			}
		} else {
			ret = run_child(ring_fd, &want[i], last, &m);
			/* a child that died may have registered first */
			if (ret == -ECHILD &&
			    !sys_pers(ring_fd, IORING_UNREGISTER_PERSONALITY, id))
				ncalls++;
			if (ret) {
				ret = ucr_errf(err, ret, ret == -ECHILD ?
					       "the process registering personality %u ended without a report (%s)" :
					       "forking the process that registers personality %u: %s",
					       id, strerror(-ret));
				break;
			}
			if (m.step == ST_REGISTER)
				ncalls++;
			if (m.err) {
				ret = ucr_errf(err, -m.err, "%s for personality %u%s%s: %s; %s",
					       steps[m.step].what, id, m.field[0] ? ": " : "",
					       m.field, strerror(m.err), steps[m.step].fix);
				break;
			}
			got = m.id;
		}
		if (got != (int)id) {
			sys_pers(ring_fd, IORING_UNREGISTER_PERSONALITY, got);
			ncalls++;
			ret = ucr_errf(err, -EEXIST,
				       "registering personality %u gave id %d: the ring's personalities or id counter were not new; restore into a new ring",
				       id, got);
			break;
		}
		if (!gap) {
			i++;
			continue;
		}
		got = sys_pers(ring_fd, IORING_UNREGISTER_PERSONALITY, id);
		ncalls++;
		if (got < 0)
			ret = ucr_errf(err, got, "unregistering the unused personality id %u: %s",
				       id, strerror(-got));
	}
	/* all or nothing: the personalities registered so far go again */
	while (ret && i--) {
		sys_pers(ring_fd, IORING_UNREGISTER_PERSONALITY, pers[i].id);
		ncalls++;
	}
	free(want);
	if (calls)
		*calls += ncalls;
	return ret;
}
