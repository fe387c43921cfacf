// SPDX-License-Identifier: GPL-2.0
/*
 * The counter replay's arithmetic (replay.c does the work). The counters
 * are free-running u32s: every distance here is taken modulo 2^32, so a
 * ring whose counters wrapped, or wrap during the replay, needs nothing
 * special. A new 6.12 ring starts at 0; a test kernel may start it
 * anywhere (kernel-patches/wrap/), and the plan starts where it is.
 */
#include "restore.h"

void ucr_replay_plan(uint32_t from_sq, uint32_t from_cq, uint32_t sq_head,
		     uint32_t cq_tail, uint64_t *nops, uint64_t *drops, uint64_t *msgs)
{
	/*
	 * A NOP moves both counters, a dropped entry the SQ head alone, a
	 * MSG_RING post the CQ tail alone: NOPs for the common part, then
	 * one of the others for what is left, the short way round.
	 */
	int32_t extra = (int32_t)((cq_tail - sq_head) - (from_cq - from_sq));

	if (extra >= 0) {
		*nops = (uint32_t)(sq_head - from_sq);
		*drops = 0;
		*msgs = (uint32_t)extra;
	} else {
		*nops = (uint32_t)(cq_tail - from_cq);
		*drops = (uint32_t)-extra;
		*msgs = 0;
	}
}
