// SPDX-License-Identifier: GPL-2.0
/*
 * Host unit test of order.c, the order ucr_restore_image() sets rings up
 * in: rings built by hand (fake.h) whose sharing the image's own fd order
 * cannot rebuild, and some that no order can. No kernel: make -C uringcr
 * unit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi.h"

#include "fake.h"
#include "order.h"
#include "unit.h"

/* The order found, as "1,0,2", and the return value in *@ret. */
static const char *found(struct fake *f, bool existing, int *ret)
{
	static char text[64];
	unsigned int order[4], i;

	*ret = ucr_order_find(f->rings, f->nr, existing, order);
	text[0] = '\0';
	for (i = 0; i < f->nr; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%u", i ? "," : "",
			 order[i]);
	return text;
}

#define T_ORDER(f, existing, want_ret, want, what) do {			\
	int r_;								\
	const char *o_ = found((f), (existing), &r_);			\
	T_EQ(r_, (want_ret), (what));					\
	t_check(!strcmp(o_, (want)), __FILE__, __LINE__,		\
		"%s: order %s, want %s", (what), o_, (want));		\
} while (0)

static void sqpoll(struct fake *f, unsigned int ring, int first, bool attached)
{
	f->rings[ring].k.flags = IORING_SETUP_SQPOLL | (attached ? IORING_SETUP_ATTACH_WQ : 0);
	f->rings[ring].sq_share = first;
	if (ring + 1 > f->nr)
		f->nr = ring + 1;
}

/* Nothing to reorder: the image's order, also for one ring and none. */
static void image_order(void)
{
	struct fake *f = fresh();

	T_ORDER(f, false, 0, "", "no rings");
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 1);
	T_ORDER(f, false, 0, "0", "one ring");
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_ANON, 1);
	buf(f, 2, 0, 8 * K, 4 * K, UCR_BACK_ANON, 3);
	share(f, 0, 0, 1, -1);
	T_ORDER(f, false, 0, "0,1,2", "a clone in fd order");
	free(f);
}

/* The ring that started an SQPOLL thread before the rings attached to it. */
static void thread_first(void)
{
	struct fake *f = fresh();
	struct ucr_ring p[4];
	unsigned int order[4];

	sqpoll(f, 0, 0, true);		/* fd order: the attached ring first */
	sqpoll(f, 1, 0, false);
	sqpoll(f, 2, 0, true);
	f->rings[3].sq_share = -1;
	f->nr = 4;
	T_ORDER(f, false, 0, "1,0,2,3", "the thread's owner first");
	T_OK(ucr_order_find(f->rings, f->nr, false, order), "find");
	ucr_order_apply(f->rings, f->nr, order, p);
	T_EQ(p[0].fd, 11, "the owner set up first");
	T_EQ(p[0].sq_share, 0, "the owner is the thread's first ring");
	T_EQ(p[1].sq_share, 0, "attached to the owner");
	T_EQ(p[2].sq_share, 0, "attached to the owner");
	T_EQ(p[3].sq_share, -1, "no SQPOLL");
	/* a thread whose first ring in fd order is attached to another: fine as it is */
	free(f);
	f = fresh();
	sqpoll(f, 0, 0, true);
	sqpoll(f, 1, 0, true);
	T_ORDER(f, false, 0, "0,1", "every ring attached: the first starts it from a ring of its own");
	free(f);
}

/*
 * R {x, y}; O {b0, b1}; T {x, b1} (cr_order's clone kind): T between
 * R and O, so that O clones T.
 */
static void shared_with_two(void)
{
	struct fake *f = fresh();

	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 1);
	buf(f, 0, 1, 4 * K, 4 * K, UCR_BACK_ANON, 2);
	buf(f, 1, 0, 8 * K, 4 * K, UCR_BACK_ANON, 3);
	buf(f, 1, 1, 12 * K, 4 * K, UCR_BACK_ANON, 4);
	buf(f, 2, 0, 0, 4 * K, UCR_BACK_ANON, 1);
	buf(f, 2, 1, 12 * K, 4 * K, UCR_BACK_ANON, 4);
	share(f, 0, 0, 2, -1);
	share(f, 1, 1, 2, -1);
	T_ORDER(f, false, 0, "0,2,1", "the ring that shares with both in between");
	free(f);
}

/* Three rings, each pair sharing a buffer of its own: no order rebuilds it. */
static void triangle(void)
{
	struct fake *f = fresh();
	unsigned int r;

	for (r = 0; r < 3; r++) {
		buf(f, r, 0, (r * 3 + 0) * 4 * K, 4 * K, UCR_BACK_ANON, 10 * r + 1);
		buf(f, r, 1, (r * 3 + 1) * 4 * K, 4 * K, UCR_BACK_ANON, 10 * r + 2);
		buf(f, r, 2, (r * 3 + 2) * 4 * K, 4 * K, UCR_BACK_ANON, 10 * r + 3);
	}
	share(f, 0, 1, 2, -1);		/* x: O and T */
	share(f, 1, 0, 2, -1);		/* y: R and T */
	share(f, 2, 0, 1, -1);		/* z: R and O */
	T_ORDER(f, false, -EOPNOTSUPP, "0,1,2", "a triangle, the image's order back");
	free(f);
}

/* Pages registered, unmapped, and mapped again at the same address. */
static void pages_again(void)
{
	struct fake *f = fresh();

	/* ring 0 (fd 10) has the new page at x, ring 1 the one that went */
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	T_ORDER(f, false, 0, "1,0", "the gone page's ring first");
	/*
	 * the caller's memory (UCR_MEM_EXISTING) is not the plans': they map
	 * only gone pages, so the image's order stands (and the restore
	 * finds x taken by the caller's page, EEXIST)
	 */
	T_ORDER(f, true, 0, "0,1", "existing memory");
	free(f);

	/* and both ways round at two addresses: no order */
	f = fresh();
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 0, 1, 8 * K, 4 * K, UCR_BACK_GONE, 800);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	buf(f, 1, 1, 8 * K, 4 * K, UCR_BACK_ANON, 801);
	T_ORDER(f, false, -EOPNOTSUPP, "0,1", "crossed pages");
	free(f);
}

/*
 * Past UCR_ORDER_MAX rings only the image's order is tried: it stands if it
 * works, and the search says it stopped short (-E2BIG) if it does not.
 */
static void too_many(void)
{
	struct ucr_ring rings[UCR_ORDER_MAX + 1];
	unsigned int order[UCR_ORDER_MAX + 1], i;
	bool identity = true;

	memset(rings, 0, sizeof(rings));
	for (i = 0; i <= UCR_ORDER_MAX; i++) {
		rings[i].fd = 10 + i;
		rings[i].sq_share = -1;
	}
	T_OK(ucr_order_find(rings, UCR_ORDER_MAX + 1, false, order), "8 rings sharing nothing");
	/* seven attached to the thread of the last, the owner: 8! orders unsearched */
	for (i = 0; i <= UCR_ORDER_MAX; i++) {
		rings[i].k.flags = IORING_SETUP_SQPOLL | IORING_SETUP_ATTACH_WQ;
		rings[i].sq_share = 0;
	}
	rings[UCR_ORDER_MAX].k.flags = IORING_SETUP_SQPOLL;
	T_EQ(ucr_order_find(rings, UCR_ORDER_MAX + 1, false, order), -E2BIG,
	     "8 rings, the thread's owner last");
	for (i = 0; i <= UCR_ORDER_MAX; i++)
		identity &= order[i] == i;
	t_check(identity, __FILE__, __LINE__, "the image's order back after -E2BIG");
}

int main(void)
{
	image_order();
	thread_first();
	shared_with_two();
	triangle();
	pages_again();
	too_many();
	return t_done("test_order");
}
