/* SPDX-License-Identifier: GPL-2.0 */
/* Physical memory through /proc/kcore (kcore.c). */
#ifndef UCR_KCORE_H
#define UCR_KCORE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct ucr_kcore;

/* 0, or -errno with the reason (no kcore, no rights, lockdown) */
int ucr_kcore_open(struct ucr_kcore **k, struct ucr_err *err);
void ucr_kcore_close(struct ucr_kcore *k);
/* @len bytes of physical memory from @phys */
int ucr_kcore_read(struct ucr_kcore *k, uint64_t phys, void *buf, size_t len,
		   struct ucr_err *err);

#endif /* UCR_KCORE_H */
