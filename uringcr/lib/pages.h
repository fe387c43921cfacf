/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The buffers' memory over the rings of one image (pages.c): which ring's
 * restore maps which addresses, which pages one mapping carries for two
 * rings, and after which ring a buffer the owner had unmapped goes again.
 */
#ifndef UCR_PAGES_H
#define UCR_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Memory a restore maps for buffers (UCR_MEM_CREATE, and gone buffers). */
struct region {
	uint64_t start, end;
	enum ucr_backing kind;
	uint32_t shift;
	const struct ucr_buf *first;	/* the buffer that opened the region */
	unsigned int ring;		/* the ring whose restore maps it */
	unsigned int last;		/* UCR_BACK_GONE: the ring that unmaps it */
	bool placed;			/* our placeholder or mapping is there */
};

/* What the rings planned so far have mapped, and had mapped and unmapped. */
struct ucr_pages {
	const struct ucr_ring *rings;
	unsigned int nr_rings;
	bool defer;		/* the later rings come in the same restore */
	struct region *mapped;	/* sorted by start, disjoint */
	unsigned int nr_mapped;
	struct region *unmapped; /* gone buffers' memory, unmapped again */
	unsigned int nr_unmapped;
};

/*
 * @defer: every ring of @rings is restored in one call, in order
 * (ucr_restore_image()), so a gone buffer's pages may stay mapped until
 * the last ring that registers them; otherwise each ring unmaps its own.
 */
void ucr_pages_init(struct ucr_pages *pg, const struct ucr_ring *rings,
		    unsigned int nr_rings, bool defer);
/*
 * Ring @k's regions, those it maps itself (*@own, calloc()ed, sorted),
 * after the rings committed before it: not what they mapped and left
 * mapped with the same pages. @cloned: the buffers its clone brings
 * (share.c); @existing: UCR_MEM_EXISTING, only gone buffers need memory.
 * -EOPNOTSUPP with a sentence in @why for what one process cannot map.
 */
int ucr_pages_plan(const struct ucr_pages *pg, unsigned int k, const bool *cloned,
		   bool existing, struct region **own, unsigned int *nr_own,
		   char *why, size_t size);
/* Ring @k done: its regions join what is mapped; what it unmapped leaves. */
int ucr_pages_commit(struct ucr_pages *pg, unsigned int k, const struct region *own,
		     unsigned int nr_own);
/*
 * Ring @k planned as its restore plans it, all steps: the buffers its
 * clone brings (share.c), its regions, committed. For what the rings
 * restored before it mapped, without restoring anything (the dump's
 * refusals, a restore of one ring whose peers are restored already).
 * 0, -ENOMEM, or -EOPNOTSUPP with the sentence in @why and the step that
 * refused in *@refused: "buffer-shared" or "buffer-pages".
 */
int ucr_pages_ring(struct ucr_pages *pg, unsigned int k, bool existing,
		   const char **refused, char *why, size_t size);
void ucr_pages_free(struct ucr_pages *pg);

#endif /* UCR_PAGES_H */
