// SPDX-License-Identifier: GPL-2.0
/*
 * The order ucr_restore_image() sets an image's rings up in (README.md,
 * "Restore order"). The image lists rings in fd order, but what the rings
 * share can need another:
 *
 *   - a ring set up with IORING_SETUP_ATTACH_WQ joins the SQPOLL thread of
 *     a ring that exists already, and the ring that started the thread
 *     has no ATTACH_WQ: it must come first, wherever its fd is;
 *   - a ring clones the buffer table of one earlier ring (share.c), so a
 *     ring that shares buffers with two rings comes between them;
 *   - pages one ring registered and unmapped, mapped again and registered
 *     by another (pages.c): the first owner comes first.
 *
 * The search tries the orders from the image's own on, in lexicographic
 * order, and takes the first that every ring's plans accept; the restore
 * then gives the rings their fds in image order again. Only the image's
 * own order is tried beyond UCR_ORDER_MAX rings, and the search stops
 * after planning UCR_ORDER_WORK buffers (an image that no order restores
 * has every order tried: 5040 for 7 rings).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uapi.h"

#include "order.h"
#include "pages.h"

/* The next permutation of @a in lexicographic order; false after the last. */
static bool next_order(unsigned int *a, unsigned int n)
{
	unsigned int i, j, t;

	if (n < 2)
		return false;
	for (i = n - 1; i > 0 && a[i - 1] >= a[i]; i--)
		;
	if (!i)
		return false;
	for (j = n - 1; a[j] <= a[i - 1]; j--)
		;
	t = a[i - 1], a[i - 1] = a[j], a[j] = t;
	for (j = n - 1; i < j; i++, j--)
		t = a[i], a[i] = a[j], a[j] = t;
	return true;
}

void ucr_order_apply(const struct ucr_ring *rings, unsigned int nr, const unsigned int *order,
		     struct ucr_ring *out)
{
	unsigned int i, j;

	for (i = 0; i < nr; i++)
		out[i] = rings[order[i]];
	/* sq_share names the first ring on the thread in the new order */
	for (i = 0; i < nr; i++) {
		if (rings[order[i]].sq_share < 0)
			continue;
		for (j = 0; j <= i; j++)
			if (rings[order[j]].sq_share == rings[order[i]].sq_share)
				break;
		out[i].sq_share = (int)j;
	}
}

/* The first ring on each SQPOLL thread must be able to start it. */
static bool sq_threads_ok(const struct ucr_ring *p, unsigned int nr)
{
	unsigned int i, j;

	for (i = 0; i < nr; i++) {
		if (p[i].sq_share != (int)i || !(p[i].k.flags & IORING_SETUP_ATTACH_WQ))
			continue;
		for (j = i + 1; j < nr; j++)
			if (p[j].sq_share == (int)i && !(p[j].k.flags & IORING_SETUP_ATTACH_WQ))
				return false;
	}
	return true;
}

/*
 * Every ring's share and pages plans, in the order of @p; *@work counts
 * the buffers planned.
 */
static int plans_ok(const struct ucr_ring *p, unsigned int nr, bool existing, uint64_t *work)
{
	const char *refused;
	struct ucr_pages pg;
	unsigned int k;
	char why[256];
	int ret = 0;

	ucr_pages_init(&pg, p, nr, true);
	for (k = 0; k < nr && !ret; k++) {
		*work += p[k].nr_used_bufs + 1;
		ret = ucr_pages_ring(&pg, k, existing, &refused, why, sizeof(why));
	}
	ucr_pages_free(&pg);
	return ret;
}

int ucr_order_find(const struct ucr_ring *rings, unsigned int nr, bool existing,
		   unsigned int *order)
{
	struct ucr_ring *p;
	uint64_t work = 0;
	unsigned int i;
	int ret;

	for (i = 0; i < nr; i++)
		order[i] = i;
	if (!nr)
		return 0;
	p = calloc(nr, sizeof(*p));
	if (!p)
		return -ENOMEM;
	do {
		ucr_order_apply(rings, nr, order, p);
		ret = sq_threads_ok(p, nr) ? plans_ok(p, nr, existing, &work) : -EOPNOTSUPP;
		if (ret == -EOPNOTSUPP && (nr > UCR_ORDER_MAX || work >= UCR_ORDER_WORK))
			ret = -E2BIG;
	} while (ret == -EOPNOTSUPP && next_order(order, nr));
	free(p);
	if (ret)		/* the image's own order, for the plans to say why */
		for (i = 0; i < nr; i++)
			order[i] = i;
	return ret;
}
