// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the iterators read through io_uring (IORING_OP_READ). Ring
 * a's iterators are read inline under a's own ->uring_lock (O_NONBLOCK:
 * -EDEADLK, twice, and read(2) afterwards still gives the whole walk),
 * inline under ring b's lock (a's is free: the whole walk), and through
 * io-wq (no O_NONBLOCK: the whole walk, maybe after "busy"); an SQPOLL
 * ring's, inline by its SQ thread (-EDEADLK) and through io-wq. Prints one
 * "case name=.. iter=.. ring=.. nonblock=.. res=<first CQE res> busy=..
 * status=<final status> same=<0|1>" line per read;
 * test_uring_iter.py::test_read_through_io_uring checks them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "guest.h"

#define BUSY_RETRIES	100
#define TEXT_SZ		(64 * 1024)

static char ref_text[TEXT_SZ], got_text[TEXT_SZ];

/*
 * IORING_OP_READ of @iter_fd on @ring until EOF into @buf. Returns 0 with
 * the text in @buf, or the first negative CQE res; *@busy counts -EDEADLK
 * results retried when @retry_busy.
 */
static int ring_read_all(struct io_uring *ring, int iter_fd, char *buf,
			 size_t size, bool retry_busy, int *busy, int *first_res)
{
	size_t len = 0;
	bool first = true;

	for (;;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		int ret, res;

		if (!sqe || len + 1 >= size)
			return -E2BIG;
		io_uring_prep_read(sqe, iter_fd, buf + len, size - len - 1, 0);
		ret = ring_submit_wait(ring, &res);
		if (ret) {
			/* -ETIME: no completion within the timeout */
			printf("cqe_wait error=%d\n", -ret);
			return ret == -ETIME ? -ETIME : -EIO;
		}
		if (first)
			*first_res = res;
		first = false;
		if (res == -EDEADLK && retry_busy && *busy < BUSY_RETRIES) {
			++*busy;
			continue;
		}
		if (res < 0)
			return res;
		if (!res)
			break;
		len += res;
	}
	buf[len] = '\0';
	return 0;
}

/* The whole walk by read(2), what every successful ring read must equal. */
static int reference_walk(struct bpf_link *link)
{
	int fd = iter_open(link, false);
	long len;

	if (fd < 0)
		return -1;
	len = read_walk(fd, ref_text, sizeof(ref_text), sizeof(ref_text) / 2, 0, NULL);
	close(fd);
	return len > 0 ? 0 : -1;
}

/* After -EDEADLK inline: again -EDEADLK, and read(2) still gets the whole walk */
static void self_inline_after(int fd, const char *it, const char *ring_name,
			      struct io_uring *ring)
{
	int second = 0, dummy = 0, status;

	status = ring_read_all(ring, fd, got_text, sizeof(got_text), false,
			       &dummy, &second);
	printf("case name=self-inline-again iter=%s ring=%s nonblock=1 res=%d busy=0 status=%d same=0\n",
	       it, ring_name, second, status);
	step("read(2) after -EDEADLK");
	status = read_walk(fd, got_text, sizeof(got_text), 4096, 0, NULL) > 0 ? 0 : -1;
	printf("case name=read-after-edeadlk iter=%s ring=none nonblock=1 res=0 busy=0 status=%d same=%d\n",
	       it, status, !status && !strcmp(got_text, ref_text));
}

/* One case: read a fresh iterator fd of @link through @ring. */
static int read_case(const char *name, const char *it, struct bpf_link *link,
		     const char *ring_name, struct io_uring *ring,
		     bool nonblock, bool retry_busy)
{
	int fd, busy = 0, first_res = 0, status;
	char what[128];

	fd = iter_open(link, nonblock);
	if (fd < 0)
		return -1;
	snprintf(what, sizeof(what), "%s iter=%s ring=%s nonblock=%d", name, it,
		 ring_name, nonblock);
	step(what);
	status = ring_read_all(ring, fd, got_text, sizeof(got_text), retry_busy,
			       &busy, &first_res);
	printf("case name=%s iter=%s ring=%s nonblock=%d res=%d busy=%d status=%d same=%d\n",
	       name, it, ring_name, nonblock, first_res, busy, status,
	       !status && !strcmp(got_text, ref_text));
	if (!strcmp(name, "self-inline"))
		self_inline_after(fd, it, ring_name, ring);
	close(fd);
	return 0;
}

static enum t_exit test_edeadlk(void)
{
	struct io_uring a, b, sq;
	struct io_uring_params pa, pb, psq;
	struct iovec iov;
	struct bpf_link *links[3][2];
	struct io_uring *rings[3] = { &a, &b, &sq };
	char *mem;
	int r, k, fd;

	mem = mmap(NULL, 2 * PAGE_SZ, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return t_fail("mmap");
	memset(mem, 1, 2 * PAGE_SZ);
	iov = (struct iovec){ mem, 2 * PAGE_SZ };

	if (ring_init(&a, &pa, 8, 0, 0, 0) || ring_init(&b, &pb, 8, 0, 0, 0))
		return t_fail("ring setup");
	if (ring_init(&sq, &psq, 8, 0, IORING_SETUP_SQPOLL, 0))
		return t_fail("SQPOLL ring setup");
	print_ring("a", &a, &pa);
	print_ring("b", &b, &pb);
	print_ring("sqpoll", &sq, &psq);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (r = 0; r < 3; r++) {
		if (io_uring_register_buffers(rings[r], &iov, 1) ||
		    io_uring_register_files(rings[r], &fd, 1))
			return t_fail("register");
		for (k = 0; k < 2; k++) {
			links[r][k] = iter_attach(k, rings[r]->ring_fd);
			if (!links[r][k])
				return t_fail("attach");
		}
	}
	close(fd);

	for (k = 0; k < 2; k++) {
		/* ring a's iterators, read every way there is */
		if (reference_walk(links[0][k]))
			return t_fail("reference read(2)");
		printf("reference iter=%s bytes=%zu\n", it_name[k], strlen(ref_text));
		/* inline, under a's uring_lock: must not take it again */
		if (read_case("self-inline", it_name[k], links[0][k], "a", &a,
			      true, false) ||
		    /* inline under b's lock: a's is free */
		    read_case("other-inline", it_name[k], links[0][k], "b", &b,
			      true, false) ||
		    /* io-wq, no uring_lock held: succeeds, maybe after "busy" */
		    read_case("self-iowq", it_name[k], links[0][k], "a", &a,
			      false, true))
			return t_fail("iterator fd");

		/* SQPOLL: its thread issues under the ring's uring_lock */
		if (reference_walk(links[2][k]))
			return t_fail("reference read(2)");
		if (read_case("sqpoll-inline", it_name[k], links[2][k],
			      "sqpoll", &sq, true, false) ||
		    read_case("sqpoll-iowq", it_name[k], links[2][k],
			      "sqpoll", &sq, false, true))
			return t_fail("iterator fd");
	}
	iter_print_counters("end");

	for (r = 0; r < 3; r++) {
		bpf_link__destroy(links[r][0]);
		bpf_link__destroy(links[r][1]);
		io_uring_queue_exit(rings[r]);
	}
	return t_pass();
}

int main(int argc, char *argv[])
{
	enum t_exit ret;

	t_start("iter_edeadlk", argc, argv);
	ret = iter_load();
	if (ret != T_EXIT_PASS)
		return ret;
	ret = test_edeadlk();
	iter_unload();
	return ret;
}
