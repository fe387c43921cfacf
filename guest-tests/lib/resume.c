// SPDX-License-Identifier: GPL-2.0
/* The checkpoint scenarios' resume mode (resume.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ktap.h"
#include "resume.h"
#include "uringcr.h"

int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/*
 * Ring @idx of @dir, or with @all every ring (ucr_restore_image()), into
 * @r; @nr: how many rings the caller wants. Prints the "resume" lines.
 */
static int restore(const char *dir, unsigned int idx, bool all, unsigned int nr,
		   struct ucr_restored *r)
{
	struct ucr_restore_opts o;
	struct ucr_image *img;
	struct ucr_err err;
	unsigned int i;
	int fds, maps, ret;

	fds = count_fds();
	maps = count_maps();
	if (ucr_image_open(dir, &img, &err)) {
		printf("resume failed %s\n", err.msg);
		return -1;
	}
	ucr_restore_opts_default(&o);
	if (all && ucr_image_nr_rings(img) != nr) {
		snprintf(err.msg, sizeof(err.msg), "the image has %u rings, not %u",
			 ucr_image_nr_rings(img), nr);
		ret = -1;
	} else {
		ret = all ? ucr_restore_image(img, &o, r, &err) :
		      ucr_restore_ring(img, idx, &o, r, &err);
	}
	ucr_image_close(img);
	if (ret) {
		printf("resume failed %s\n", err.msg);
		printf("resume leftover fds=%d maps=%d\n", count_fds() - fds, count_maps() - maps);
		fflush(stdout);
		return -1;
	}
	for (i = 0; i < nr; i++)
		printf("resume restored fd=%d new_fds=%d restore_us=%" PRIu64 " replay_us=%" PRIu64
		       " nops=%" PRIu64 " drops=%" PRIu64 " msgs=%" PRIu64 " pers_calls=%" PRIu64
		       " bytes=%" PRIu64 "\n", r[i].fd, count_fds() - fds, r[i].stats.restore_us,
		       r[i].stats.replay_us, r[i].stats.nops, r[i].stats.drops, r[i].stats.msgs,
		       r[i].stats.pers_calls, r[i].stats.bytes_read);
	return 0;
}

int resume_ring(const char *dir, unsigned int idx, struct io_uring *ring)
{
	struct ucr_restored r;
	struct ucr_err err;

	if (restore(dir, idx, false, 1, &r))
		return -1;
	if (ucr_restored_liburing(&r, ring, &err)) {
		printf("resume failed %s\n", err.msg);
		ucr_restored_close(&r);
		return -1;
	}
	return 0;
}

static int resumed_evfds[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };

int resumed_evfd(unsigned int idx)
{
	return idx < 8 ? resumed_evfds[idx] : -1;
}

int resume_rings(const char *dir, unsigned int nr, struct io_uring *rings)
{
	struct ucr_restored r[8];
	struct ucr_err err;
	unsigned int i;

	if (nr > 8 || restore(dir, 0, true, nr, r))
		return -1;
	for (i = 0; i < nr; i++)
		resumed_evfds[i] = r[i].evfd;
	for (i = 0; i < nr; i++) {
		/* a failure here fails the program, whose exit closes the rings */
		if (ucr_restored_liburing(&r[i], &rings[i], &err)) {
			printf("resume failed %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

void result(const char *fmt, ...)
{
	va_list ap;

	printf("result ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

int result_cqe(struct io_uring *ring, __u64 *user_data)
{
	struct io_uring_cqe *cqe;
	int ret = io_uring_wait_cqe(ring, &cqe);

	if (ret) {
		result("wait=%d", ret);
		return ret;
	}
	result("user_data=0x%llx res=%d flags=0x%x", (unsigned long long)cqe->user_data,
	       cqe->res, cqe->flags);
	*user_data = cqe->user_data;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}
