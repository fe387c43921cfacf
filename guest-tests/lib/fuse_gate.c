// SPDX-License-Identifier: GPL-2.0
/*
 * The FUSE gate (fuse_gate.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/fuse.h>

#include "guest.h"

#define FUSE_FILE_SZ	(256UL << 20)
#define FUSE_BUF_SZ	(256 * 1024)

struct fuse_gate {
	int dev;
	char mnt[64];
	int file;
	char *map;
	unsigned long next_page;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool closed;		/* FUSE_READs wait while closed */
	unsigned long reads;	/* FUSE_READs received */
	bool running;
};

static struct fuse_gate gate = {
	.dev = -1, .file = -1,
	.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
};

static void fuse_reply(int dev, uint64_t unique, int error, const void *data,
		       size_t len)
{
	struct fuse_out_header h = {
		.len = sizeof(h) + (error ? 0 : len), .error = error, .unique = unique,
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)data, error ? 0 : len } };

	/* ENOENT: the request was interrupted or aborted meanwhile */
	if (writev(dev, iov, 2) < 0 && errno != ENOENT)
		t_diag("fuse reply: %s", strerror(errno));
}

static void fuse_attr_of(uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	if (node == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0644;
		a->nlink = 1;
		a->size = FUSE_FILE_SZ;
		a->blocks = FUSE_FILE_SZ / 512;
	}
	a->blksize = PAGE_SZ;
}

static void fuse_read(struct fuse_gate *g, struct fuse_in_header *h,
		      struct fuse_read_in *r)
{
	static const char zeros[FUSE_BUF_SZ];
	size_t len = r->size < sizeof(zeros) ? r->size : sizeof(zeros);

	pthread_mutex_lock(&g->mu);
	g->reads++;
	pthread_cond_broadcast(&g->cv);
	while (g->closed)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	if (r->offset >= FUSE_FILE_SZ)
		len = 0;
	fuse_reply(g->dev, h->unique, 0, zeros, len);
}

static void fuse_lookup(struct fuse_gate *g, struct fuse_in_header *h,
			const char *name)
{
	struct fuse_entry_out out = {
		.nodeid = 2, .generation = 1,
		.entry_valid = 3600, .attr_valid = 3600,
	};

	if (h->nodeid != FUSE_ROOT_ID || strcmp(name, "f")) {
		fuse_reply(g->dev, h->unique, -ENOENT, NULL, 0);
		return;
	}
	fuse_attr_of(2, &out.attr);
	fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
}

static void *fuse_serve(void *arg)
{
	static char in[FUSE_BUF_SZ];
	struct fuse_gate *g = arg;

	for (;;) {
		ssize_t n = read(g->dev, in, sizeof(in));
		struct fuse_in_header *h = (void *)in;
		void *body = in + sizeof(*h);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < (ssize_t)sizeof(*h))
			break;		/* ENODEV: unmounted */
		switch (h->opcode) {
		case FUSE_INIT: {
			struct fuse_init_out out = {
				.major = FUSE_KERNEL_VERSION,
				.minor = FUSE_KERNEL_MINOR_VERSION,
				/* no readahead: one FUSE_READ per faulting page */
				.max_readahead = 0,
				.max_background = 4,
				.congestion_threshold = 3,
				.max_write = 4096,
				.time_gran = 1,
				.max_pages = 1,
			};
			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_LOOKUP:
			fuse_lookup(g, h, body);
			break;
		case FUSE_GETATTR: {
			struct fuse_attr_out out = { .attr_valid = 3600 };

			fuse_attr_of(h->nodeid, &out.attr);
			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_OPEN: {
			struct fuse_open_out out = { .fh = 1 };

			fuse_reply(g->dev, h->unique, 0, &out, sizeof(out));
			break;
		}
		case FUSE_READ:
			fuse_read(g, h, body);
			break;
		case FUSE_FLUSH:
		case FUSE_RELEASE:
		case FUSE_DESTROY:
			fuse_reply(g->dev, h->unique, 0, NULL, 0);
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break;		/* these get no reply */
		default:
			fuse_reply(g->dev, h->unique, -ENOSYS, NULL, 0);
			break;
		}
	}
	return NULL;
}

int fuse_gate_start(void)
{
	struct fuse_gate *g = &gate;
	char opts[128], path[256];

	snprintf(g->mnt, sizeof(g->mnt), "/tmp/fuse_gate.XXXXXX");
	if (!mkdtemp(g->mnt)) {
		t_diag("mkdtemp: %s", strerror(errno));
		g->mnt[0] = '\0';
		return -1;
	}
	g->dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (g->dev < 0) {
		t_diag("open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	/* a private mount namespace: the mount goes away with the process */
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		t_diag("private mount namespace: %s", strerror(errno));
		return -1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", g->dev);
	if (mount("fuse_gate", g->mnt, "fuse", MS_NOSUID | MS_NODEV, opts)) {
		t_diag("mount fuse on %s: %s", g->mnt, strerror(errno));
		return -1;
	}
	if (pthread_create(&g->thr, NULL, fuse_serve, g))
		return -1;
	g->running = true;
	snprintf(path, sizeof(path), "%s/f", g->mnt);
	g->file = open(path, O_RDONLY | O_CLOEXEC);
	if (g->file < 0) {
		t_diag("open %s: %s", path, strerror(errno));
		return -1;
	}
	g->map = mmap(NULL, FUSE_FILE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		      g->file, 0);
	if (g->map == MAP_FAILED) {
		g->map = NULL;
		t_diag("mmap the FUSE file: %s", strerror(errno));
		return -1;
	}
	/* fault in exactly the page touched, nothing around it */
	madvise(g->map, FUSE_FILE_SZ, MADV_RANDOM);
	return 0;
}

void fuse_gate_stop(void)
{
	struct fuse_gate *g = &gate;

	pthread_mutex_lock(&g->mu);
	g->closed = false;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->map)
		munmap(g->map, FUSE_FILE_SZ);
	if (g->file >= 0)
		close(g->file);
	if (g->mnt[0]) {
		umount2(g->mnt, MNT_DETACH);
		rmdir(g->mnt);
	}
	/* the server sees ENODEV once the connection is gone */
	if (g->running)
		pthread_join(g->thr, NULL);
	if (g->dev >= 0)
		close(g->dev);
}

static void *hold_thread(void *p)
{
	struct hold *h = p;

	/* IORING_REGISTER_PROBE copies its argument in with ->uring_lock held */
	h->ret = syscall(__NR_io_uring_register, h->ring_fd, IORING_REGISTER_PROBE,
			 h->arg, 0);
	if (h->ret < 0)
		h->ret = -errno;
	atomic_store(&h->returned, true);
	return NULL;
}

int hold_start(struct hold *h, int ring_fd)
{
	struct timespec deadline;
	unsigned long seen;
	int ret = 0;

	memset(h, 0, sizeof(*h));
	h->ring_fd = ring_fd;
	h->arg = gate.map + (gate.next_page++ * 16 + 8) * PAGE_SZ;
	pthread_mutex_lock(&gate.mu);
	gate.closed = true;
	seen = gate.reads;
	pthread_mutex_unlock(&gate.mu);
	if (pthread_create(&h->thr, NULL, hold_thread, h))
		return -1;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += wait_s(10);
	pthread_mutex_lock(&gate.mu);
	while (gate.reads == seen && ret == 0)
		ret = pthread_cond_timedwait(&gate.cv, &gate.mu, &deadline);
	ret = gate.reads == seen;
	pthread_mutex_unlock(&gate.mu);
	return ret || atomic_load(&h->returned) ? -1 : 0;
}

int hold_release(struct hold *h)
{
	pthread_mutex_lock(&gate.mu);
	gate.closed = false;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	pthread_join(h->thr, NULL);
	return h->ret;
}
