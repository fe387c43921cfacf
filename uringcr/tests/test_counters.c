// SPDX-License-Identifier: GPL-2.0
/*
 * Host unit test of counters.c, the counter replay's plan: each case
 * starts a ring's SQ head and CQ tail somewhere, applies the planned
 * NOPs, dropped entries and MSG_RING posts as the kernel would (u32
 * arithmetic) and checks where they land and what it cost. The starts
 * near 2^32 are those of the wrap test kernel (kernel-patches/wrap/).
 * No kernel: make -C uringcr unit.
 */
#include <stdint.h>

#include "restore.h"
#include "unit.h"

#define WRAP_BASE	0xfffffc14U	/* kernel-patches/wrap/'s default */

static void replay(const char *what, uint32_t from_sq, uint32_t from_cq, uint32_t sq,
		   uint32_t cq, uint64_t want_nops, uint64_t want_drops, uint64_t want_msgs)
{
	uint64_t nops, drops, msgs;
	uint32_t s = from_sq, c = from_cq;

	ucr_replay_plan(from_sq, from_cq, sq, cq, &nops, &drops, &msgs);
	/* what each operation does to the kernel's counters */
	s += (uint32_t)nops;
	c += (uint32_t)nops;
	s += (uint32_t)drops;
	c += (uint32_t)msgs;
	T_EQ(s, sq, what);
	T_EQ(c, cq, what);
	T_EQ(nops, want_nops, what);
	T_EQ(drops, want_drops, what);
	T_EQ(msgs, want_msgs, what);
	t_check(!(drops && msgs), __FILE__, __LINE__, "%s: drops and posts both", what);
}

int main(void)
{
	/* a new 6.12 ring */
	replay("empty", 0, 0, 0, 0, 0, 0, 0);
	replay("history", 0, 0, 1005, 1005, 1005, 0, 0);
	replay("aux CQEs", 0, 0, 10, 15, 10, 0, 5);
	replay("dropped entries", 0, 0, 15, 10, 10, 5, 0);
	replay("worst case", 0, 0, UINT32_MAX, UINT32_MAX, UINT32_MAX, 0, 0);
	/* an image whose counters wrapped, restored into a ring at 0 */
	replay("wrapped image", 0, 0, 3, 3, 3, 0, 0);
	replay("wrapped CQ tail only", 0, 0, 0xfffffffeU, 2, 0xfffffffeU, 0, 4);
	replay("wrapped SQ head only", 0, 0, 2, 0xfffffffeU, 0xfffffffeU, 4, 0);
	/* a ring that starts near the wrap (the wrap test kernel) */
	replay("start near the wrap", WRAP_BASE, WRAP_BASE, WRAP_BASE + 1005, WRAP_BASE + 1005,
	       1005, 0, 0);
	replay("across the wrap", WRAP_BASE, WRAP_BASE, 1, 6, 1005, 0, 5);
	replay("across, dropped", WRAP_BASE, WRAP_BASE, 6, 1, 1005, 5, 0);
	replay("image before the start", WRAP_BASE, WRAP_BASE, 5, 5, 1009, 0, 0);
	/* a start whose counters differ already */
	replay("uneven start", 10, 12, 20, 30, 10, 0, 8);
	replay("uneven start, dropped", 12, 10, 30, 20, 10, 8, 0);
	return t_done("test_counters");
}
