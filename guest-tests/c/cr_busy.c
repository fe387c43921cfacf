// SPDX-License-Identifier: GPL-2.0
/*
 * Description: a busy ring for uringcr to freeze and dump: 2 threads share
 * one ring (under a mutex, as liburing wants) and loop submitting batches
 * of 4 NOPs with user_data (thread << 32 | sequence) and reaping them,
 * while the test dumps the process, with SIGSTOP or the cgroup freezer.
 * A thread stopped between submit and reap leaves its CQEs in the ring,
 * which the image must show. After "go" the threads stop and every NOP
 * submitted must have completed exactly once, in order per thread.
 * test_uringcr_safety.py::test_busy_ring checks the images against it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "guest.h"
#include "owner.h"

#define THREADS	2
#define BATCH	4

static struct io_uring ring;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop;

struct worker {
	pthread_t thr;
	unsigned int id;
	uint64_t submitted, reaped;
	bool bad;
};

static struct worker workers[THREADS];

/* A CQE of any thread: it goes to the thread whose id it carries. */
static void account(uint64_t ud)
{
	struct worker *w = &workers[(ud >> 32) % THREADS];

	if ((ud >> 32) >= THREADS || (ud & 0xffffffff) != w->reaped) {
		w->bad = true;
		return;
	}
	w->reaped++;
}

static void *loop(void *arg)
{
	struct worker *w = arg;

	while (!stop) {
		unsigned int i;

		pthread_mutex_lock(&lock);
		for (i = 0; i < BATCH; i++) {
			struct io_uring_sqe *sqe = get_sqe(&ring);

			if (!sqe) {
				w->bad = true;
				break;
			}
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, (uint64_t)w->id << 32 | w->submitted++);
		}
		if (ring_submit(&ring, i))
			w->bad = true;
		for (; i; i--) {
			__u64 ud;

			if (ring_wait_one(&ring, &ud) < 0) {
				w->bad = true;
				break;
			}
			account(ud);
		}
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(int argc, char *argv[])
{
	struct io_uring_params p;
	unsigned int i;
	bool bad = false;

	t_start("cr_busy", argc, argv);
	if (ring_init(&ring, &p, 16, 0, 0, 0))
		return t_fail("ring setup");
	expect_ring("busy", &ring, &p);
	for (i = 0; i < THREADS; i++) {
		workers[i].id = i;
		if (pthread_create(&workers[i].thr, NULL, loop, &workers[i]))
			return t_fail("pthread_create");
	}
	if (owner_wait())
		return t_fail("no go");
	stop = true;
	for (i = 0; i < THREADS; i++) {
		pthread_join(workers[i].thr, NULL);
		printf("worker %u submitted=%llu reaped=%llu%s\n", i,
		       (unsigned long long)workers[i].submitted,
		       (unsigned long long)workers[i].reaped, workers[i].bad ? " BAD" : "");
		bad |= workers[i].bad || workers[i].submitted != workers[i].reaped ||
		       !workers[i].submitted;
	}
	return bad ? t_fail("a NOP went missing, twice or out of order") : t_pass();
}
