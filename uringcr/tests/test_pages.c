// SPDX-License-Identifier: GPL-2.0
/*
 * Host unit test of pages.c, the plan of the buffers' memory over the
 * rings of an image: rings built by hand (buffers with one bvec per page,
 * pfns chosen to say which pages are one), each case's plan checked
 * region by region. No kernel, no BPF: make -C uringcr unit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "pages.h"
#include "unit.h"

/* Plans ring @k; on success checks its regions against @want ("off+len,..."). */
static int plan(struct ucr_pages *pg, struct fake *f, unsigned int k, bool existing,
		const char *want, char *why)
{
	struct region *own;
	unsigned int n, i;
	char got[512] = "";
	int ret;

	ret = ucr_pages_plan(pg, k, f->cloned[k], existing, &own, &n, why, 512);
	if (ret)
		return ret;
	for (i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%llu+%llu%s",
			 i ? "," : "", (unsigned long long)((own[i].start - BASE) / K),
			 (unsigned long long)((own[i].end - own[i].start) / K),
			 own[i].kind == UCR_BACK_GONE ? (own[i].last == k ? "g" : "G") : "");
	ret = ucr_pages_commit(pg, k, own, n);
	free(own);
	if (ret)
		return ret;
	if (strcmp(got, want)) {
		snprintf(why, 512, "ring %u: regions %s, want %s", k, got, want);
		return -EDOM;
	}
	return 0;
}

/* Rings that each registered one pool: mapped once, pieces where they reach past it. */
static void pool_across_rings(void)
{
	struct fake *f = fresh();
	struct ucr_pages pg;
	char why[512];

	buf(f, 0, 0, 0, 64 * K, UCR_BACK_ANON, 1000);
	buf(f, 1, 0, 16 * K, 32 * K, UCR_BACK_ANON, 1004);
	buf(f, 1, 1, 8 * K, 16 * K, UCR_BACK_ANON, 1002);
	buf(f, 2, 0, 48 * K, 32 * K, UCR_BACK_ANON, 1012);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+64", why), why);
	T_OK(plan(&pg, f, 1, false, "", why), why);
	T_OK(plan(&pg, f, 2, false, "64+16", why), why);
	T_EQ(pg.nr_mapped, 2u, "mapped regions after the three rings");
	ucr_pages_free(&pg);
	/* with the memory the caller's (UCR_MEM_EXISTING) nothing is mapped */
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, true, "", why), why);
	T_OK(plan(&pg, f, 2, true, "", why), why);
	ucr_pages_free(&pg);
	free(f);
}

/* Gone pages two rings pin stay mapped from the first to the last of them. */
static void gone_pages_wait_for_the_last_ring(void)
{
	struct fake *f = fresh();
	struct ucr_pages pg;
	char why[512];

	buf(f, 0, 0, 0, 8 * K, UCR_BACK_GONE, 500);
	buf(f, 1, 0, 100 * K, 4 * K, UCR_BACK_ANON, 900);
	buf(f, 2, 0, 0, 8 * K, UCR_BACK_GONE, 500);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+8G", why), why);
	T_OK(plan(&pg, f, 1, false, "100+4", why), why);
	T_EQ(pg.nr_mapped, 2u, "the gone pages still mapped for ring 2");
	T_OK(plan(&pg, f, 2, false, "", why), why);
	T_EQ(pg.nr_unmapped, 1u, "the gone pages unmapped after ring 2");
	T_EQ(pg.nr_mapped, 1u, "only ring 1's buffer mapped at the end");
	ucr_pages_free(&pg);
	/* ring by ring the first unmaps them, and the last cannot map them again */
	ucr_pages_init(&pg, f->rings, f->nr, false);
	T_OK(plan(&pg, f, 0, false, "0+8g", why), why);
	T_OK(plan(&pg, f, 1, false, "100+4", why), why);
	T_EQ(plan(&pg, f, 2, false, "", why), -EOPNOTSUPP, "ring 2 alone");
	T_HAS(why, "restore the rings together", "the sentence");
	ucr_pages_free(&pg);
	free(f);
}

/* An address unmapped and mapped again: fine in that order, refused in the other. */
static void address_mapped_again(void)
{
	struct fake *f = fresh();
	struct ucr_pages pg;
	char why[512];

	buf(f, 0, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+4g", why), why);
	T_OK(plan(&pg, f, 1, false, "0+4", why), why);
	ucr_pages_free(&pg);
	free(f);

	f = fresh();
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+4", why), why);
	T_EQ(plan(&pg, f, 1, false, "", why), -EOPNOTSUPP, "gone where other pages are mapped");
	T_HAS(why, "one process cannot map both there at once", "the sentence");
	T_HAS(why, "ring fd 10", "names the other ring");
	ucr_pages_free(&pg);
	free(f);

	/* gone pages kept for ring 2 while ring 1 maps others at the address */
	f = fresh();
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 2, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+4G", why), why);
	T_EQ(plan(&pg, f, 1, false, "", why), -EOPNOTSUPP, "mapped where gone pages wait");
	ucr_pages_free(&pg);
	free(f);
}

/* Within one ring: gone buffers over the same pages merge, over others not. */
static void one_ring(void)
{
	struct fake *f = fresh();
	struct ucr_pages pg;
	char why[512];

	buf(f, 0, 0, 0, 8 * K, UCR_BACK_GONE, 300);
	buf(f, 0, 1, 4 * K, 8 * K, UCR_BACK_GONE, 301);
	buf(f, 0, 2, 64 * K, 4 * K, UCR_BACK_ANON, 302);
	f->cloned[0][2] = true;	/* a clone brings it: no memory */
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(plan(&pg, f, 0, false, "0+12g", why), why);
	ucr_pages_free(&pg);
	free(f);

	f = fresh();
	buf(f, 0, 0, 0, 8 * K, UCR_BACK_GONE, 300);
	buf(f, 0, 1, 4 * K, 4 * K, UCR_BACK_GONE, 400);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_EQ(plan(&pg, f, 0, false, "", why), -EOPNOTSUPP, "two gone pages at one address");
	T_HAS(why, "buffer slots 0 and 1", "names both slots");
	ucr_pages_free(&pg);
	free(f);

	f = fresh();
	buf(f, 0, 0, 0, 8 * K, UCR_BACK_ANON, 300);
	buf(f, 0, 1, 4 * K, 4 * K, UCR_BACK_GONE, 301);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_EQ(plan(&pg, f, 0, false, "", why), -EOPNOTSUPP, "mapped and gone at one address");
	ucr_pages_free(&pg);
	free(f);
}

/* All of a ring's steps at once, and which one refused (the dump names it). */
static void whole_ring_steps(void)
{
	struct fake *f = fresh();
	const char *refused = NULL;
	struct ucr_pages pg;
	char why[512];

	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_GONE, 700);
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_OK(ucr_pages_ring(&pg, 0, false, &refused, why, sizeof(why)), why);
	T_EQ(pg.nr_mapped, 1u, "ring 0's buffer committed");
	T_EQ(ucr_pages_ring(&pg, 1, false, &refused, why, sizeof(why)), -EOPNOTSUPP,
	     "gone where other pages are mapped");
	t_check(refused && !strcmp(refused, "buffer-pages"), __FILE__, __LINE__,
		"refused by %s, want buffer-pages", refused ? refused : "nothing");
	ucr_pages_free(&pg);
	free(f);

	/* one buffer (id) in two rings, and 3 references: a ring outside the image */
	f = fresh();
	buf(f, 0, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	buf(f, 1, 0, 0, 4 * K, UCR_BACK_ANON, 701);
	f->bufs[0][0].refs = f->bufs[1][0].refs = 3;
	f->bufs[1][0].id = f->bufs[0][0].id;
	ucr_pages_init(&pg, f->rings, f->nr, true);
	T_EQ(ucr_pages_ring(&pg, 0, false, &refused, why, sizeof(why)), -EOPNOTSUPP,
	     "a reference from outside the image");
	t_check(refused && !strcmp(refused, "buffer-shared"), __FILE__, __LINE__,
		"refused by %s, want buffer-shared", refused ? refused : "nothing");
	ucr_pages_free(&pg);
	free(f);
}

int main(void)
{
	pool_across_rings();
	gone_pages_wait_for_the_last_ring();
	address_mapped_again();
	one_ring();
	whole_ring_steps();
	return t_done("test_pages");
}
