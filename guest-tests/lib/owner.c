// SPDX-License-Identifier: GPL-2.0
/* The checkpoint scenarios' ring owner (owner.h). */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "clock.h"
#include "ktap.h"
#include "owner.h"
#include "ring.h"

int owner_wait_args(char *args, size_t size)
{
	char line[512];

	printf("owner ready pid=%d\n", getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strcmp(line, "go") || !strncmp(line, "go ", 3)) {
			snprintf(args, size, "%s", line[2] ? line + 3 : "");
			return 0;
		}
	}
	t_diag("stdin closed before go");
	return -1;
}

int owner_wait(void)
{
	char args[8];

	return owner_wait_args(args, sizeof(args));
}

void expect(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("expect %s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void expect_ring(const char *name, struct io_uring *ring,
		 const struct io_uring_params *p)
{
	struct stat st;

	if (fstat(ring->ring_fd, &st))
		st.st_ino = 0;
	expect("ring", "name=%s fd=%d ino=%lu flags=%u sq_entries=%u cq_entries=%u",
	       name, ring->ring_fd, (unsigned long)st.st_ino, p->flags,
	       p->sq_entries, p->cq_entries);
}

void snap_ring(struct io_uring *ring, struct ring_snap *s)
{
	unsigned int cqe_size = (ring->flags & IORING_SETUP_CQE32) ? 32 : 16;
	uint32_t pos;

	memset(s, 0, sizeof(*s));
	s->sq_head = *ring->sq.khead;
	s->sq_tail = *ring->sq.ktail;
	s->cq_head = *ring->cq.khead;
	s->cq_tail = *ring->cq.ktail;
	s->sqe_head = ring->sq.sqe_head;
	s->sqe_tail = ring->sq.sqe_tail;
	for (pos = s->cq_head; pos != s->cq_tail && s->nr_cqes < 64; pos++)
		memcpy(s->cqes[s->nr_cqes++],
		       (char *)ring->cq.cqes + (pos & *ring->cq.kring_mask) * cqe_size,
		       cqe_size);
}

void expect_counters(const char *name, const struct ring_snap *s)
{
	expect("counters", "name=%s sq_head=%u sq_tail=%u cq_head=%u cq_tail=%u sqe_head=%u sqe_tail=%u",
	       name, s->sq_head, s->sq_tail, s->cq_head, s->cq_tail, s->sqe_head,
	       s->sqe_tail);
}

bool same_ring(struct io_uring *ring, const struct ring_snap *s)
{
	struct ring_snap now;
	bool same;

	snap_ring(ring, &now);
	same = !memcmp(&now, s, sizeof(now));
	if (!same)
		t_diag("ring changed: sq %u..%u -> %u..%u, cq %u..%u -> %u..%u, liburing %u..%u -> %u..%u",
		       s->sq_head, s->sq_tail, now.sq_head, now.sq_tail, s->cq_head,
		       s->cq_tail, now.cq_head, now.cq_tail, s->sqe_head, s->sqe_tail,
		       now.sqe_head, now.sqe_tail);
	return same;
}

uint32_t crc_of(const void *buf, size_t len)
{
	return crc32(0, buf, len);
}

struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	long deadline = now_ms() + wait_s(5) * 1000L;
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(ring))) {
		if (now_ms() > deadline) {
			t_diag("no free SQE within %d s", wait_s(5));
			return NULL;
		}
		sched_yield();
	}
	return sqe;
}

int run_nops(struct io_uring *ring, unsigned int n, uint64_t base)
{
	unsigned int done = 0, i;

	while (done < n) {
		unsigned int batch = n - done;

		if (batch > ring->sq.ring_entries)
			batch = ring->sq.ring_entries;
		for (i = 0; i < batch; i++) {
			struct io_uring_sqe *sqe = get_sqe(ring);

			if (!sqe)
				return -1;
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, base + done + i);
		}
		if (ring_submit(ring, batch))
			return -1;
		for (i = 0; i < batch; i++) {
			__u64 ud;
			int res = ring_wait_one(ring, &ud);

			if (res < 0) {
				t_diag("NOP %u: %d", done + i, res);
				return -1;
			}
		}
		done += batch;
	}
	return 0;
}
