// SPDX-License-Identifier: GPL-2.0
/*
 * What an image cannot carry, by name (README.md, "Refusals"): the ring's
 * setup and settings, its buffers and its files. Buffers whose pages are
 * not mapped any more are judged in dump.c, where /proc/kcore is tried.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi.h"

#include "dumper.h"
#include "order.h"
#include "pages.h"

void ucr_refuse_ring(struct dumper *d, const struct ucr_ring *r)
{
	const struct ucr_ring_rec *k = &r->k;
	int fd = r->fd;
	uint32_t i;

	if (k->flags & IORING_SETUP_NO_MMAP)
		ucr_refuse(d->rep, "no-mmap", fd,
			   "IORING_SETUP_NO_MMAP: the rings live in application memory that the dump does not map");
	if (k->has_pbufs)
		ucr_refuse(d->rep, "provided-buffers", fd,
			   "provided buffers (IORING_REGISTER_PBUF_RING or IORING_OP_PROVIDE_BUFFERS): no 6.12 interface sets a buffer ring's head, and legacy lists are not visible");
	if (k->has_evfd && r->evfd < 0)
		ucr_refuse(d->rep, "eventfd", fd,
			   "the registered eventfd (IORING_REGISTER_EVENTFD) is not an fd of the process (it was closed after registering): a restore could not hand it back");
	if (k->pers_deep)
		ucr_refuse(d->rep, "personalities", fd,
			   "a personality id of %d or more (IORING_REGISTER_PERSONALITY): only ids below it are read",
			   UCR_PERS_IDS);
	if (k->has_personalities && !r->nr_pers && !k->pers_deep)
		ucr_refuse(d->rep, "personalities", fd,
			   "the personality table is not empty, but the walk found no personality in it");
	for (i = 0; i < r->nr_pers; i++) {
		if (r->pers[i].ngroups > UCR_GROUPS_MAX || r->pers[i].ngroups < 0)
			ucr_refuse(d->rep, "personalities", fd,
				   "personality %u has %d supplementary groups, more than the %d an image holds",
				   r->pers[i].id, r->pers[i].ngroups, UCR_GROUPS_MAX);
	}
	if (k->drain_disabled)
		ucr_refuse(d->rep, "cqe-skip", fd,
			   "the ring has used IOSQE_CQE_SKIP_SUCCESS, after which io_uring keeps no count of its requests in flight (drain_disabled): a dump could not tell a drained ring from a busy one");
	if (k->overflow)
		ucr_refuse(d->rep, "cq-overflow", fd,
			   "CQEs waiting on the overflow list (the CQ was full): reap the CQ first, then dump");
	for (i = 0; i < r->nr_used_files; i++) {
		const struct ucr_file *f = &r->files[i];
		const char *kind = NULL;

		if (f->sk_type >= 0 || !strncmp(f->path, "socket:", 7))
			kind = "a socket";
		else if (!strncmp(f->path, "pipe:", 5))
			kind = "a pipe";
		else if (!strncmp(f->path, "anon_inode:", 11))
			kind = "an anonymous inode";
		if (kind) {
			ucr_refuse(d->rep, "file-unopenable", fd,
				   "file slot %u is %s (%s): it has no path to reopen it by",
				   f->slot, kind, f->path);
			continue;
		}
		if (!f->path[0]) {
			ucr_refuse(d->rep, "file-path", fd,
				   "file slot %u: its path is longer than %d bytes", f->slot,
				   UCR_PATH_MAX - 1);
			continue;
		}
		if (!f->nlink || strstr(f->path, " (deleted)"))
			ucr_refuse(d->rep, "file-unlinked", fd,
				   "file slot %u (%s) was unlinked: it cannot be reopened by its path",
				   f->slot, f->path);
	}
}

/* What the refusals say of the orders order.c tried (its return value). */
static const char *other_orders(unsigned int nr, int found)
{
	static char beyond[96];

	if (nr < 2)
		return "there is no other order";
	if (found == -E2BIG) {
		snprintf(beyond, sizeof(beyond),
			 "other orders were tried only up to %d rings and %llu buffers planned",
			 UCR_ORDER_MAX, (unsigned long long)UCR_ORDER_WORK);
		return beyond;
	}
	return "no other order of the image's rings restores it either";
}

/*
 * An SQPOLL thread shared (IORING_SETUP_ATTACH_WQ) with a ring outside the
 * image; when @found says no order of the rings restores them (order.c),
 * also one owned by a ring that comes after one attached to it.
 */
static void refuse_sq_thread(struct dumper *d, unsigned int k, int found)
{
	const struct ucr_ring *rings = d->img.rings, *r = &rings[k];
	unsigned int j, n = 0;

	if (r->sq_share != (int)k)	/* judged at the first ring on the thread */
		return;
	for (j = k; j < d->img.nr_rings; j++)
		n += rings[j].sq_share == (int)k;
	if (n != r->k.sqd_refs)
		ucr_refuse(d->rep, "attach-wq", r->fd,
			   "the ring's SQPOLL thread serves %u rings and %u of them are rings of the image: the others are outside it (a ring whose fd went to another process, a ring left out by --fd); dump the rings that share it together",
			   r->k.sqd_refs, n);
	if (!found || !(r->k.flags & IORING_SETUP_ATTACH_WQ))
		return;
	for (j = k + 1; j < d->img.nr_rings; j++)
		if (rings[j].sq_share == (int)k && !(rings[j].k.flags & IORING_SETUP_ATTACH_WQ))
			ucr_refuse(d->rep, "attach-wq", r->fd,
				   "the ring is attached (IORING_SETUP_ATTACH_WQ) to the SQPOLL thread of ring fd %d, which comes after it in fd order: a restore in that order cannot attach it to a ring not set up yet, and %s",
				   rings[j].fd, other_orders(d->img.nr_rings, found));
}

/*
 * What the rings share that the restore could not share again: buffers
 * (share.c), their pages where each ring registered them on its own
 * (pages.c, as ucr_restore_image() restores them), and SQPOLL threads.
 */
int ucr_refuse_shared(struct dumper *d)
{
	unsigned int k, nr = d->img.nr_rings, *order = calloc(nr + 1, sizeof(*order));
	char why[sizeof(d->rep->refusals[0].why)];
	struct ucr_pages pg;
	int ret, found;

	if (!order)
		return ucr_errf(d->err, -ENOMEM, "out of memory");
	/* the restore's own search: any order that works is the restore's */
	found = ucr_order_find(d->img.rings, nr, false, order);
	free(order);
	if (found == -ENOMEM)
		return ucr_errf(d->err, found, "out of memory");
	for (k = 0; k < nr; k++)
		refuse_sq_thread(d, k, found);
	if (!found)
		return 0;
	/* none does: the image's order says what fails, ring by ring */
	ucr_pages_init(&pg, d->img.rings, nr, true);
	for (k = 0, ret = 0; k < nr && ret != -ENOMEM; k++) {
		const char *refused;

		/* a refused ring's memory is left out of the plan of the later ones */
		ret = ucr_pages_ring(&pg, k, false, &refused, why, sizeof(why));
		if (ret == -EOPNOTSUPP)
			ucr_refuse(d->rep, refused, d->img.rings[k].fd, "%s; %s", why,
				   other_orders(nr, found));
	}
	ucr_pages_free(&pg);
	return ret == -ENOMEM ? ucr_errf(d->err, ret, "out of memory") : 0;
}
