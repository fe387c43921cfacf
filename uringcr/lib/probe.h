/* SPDX-License-Identifier: GPL-2.0 */
/* The iterator walks (probe.c): the only code that talks BPF. */
#ifndef UCR_PROBE_H
#define UCR_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

struct ucr_probe;

int ucr_probe_load(struct ucr_probe **p, struct ucr_err *err);
void ucr_probe_close(struct ucr_probe *p);

/*
 * One walk of the ring at @ring_fd (the dumper's copy): its records in a
 * malloc'd array of *@nr, and the ring's own record in *@k. EDEADLK is
 * retried for @lock_ms, each retry counted in *@retries. @what names the
 * ring in errors.
 */
int ucr_probe_bufs(struct ucr_probe *p, int ring_fd, unsigned int lock_ms,
		   struct ucr_ring_rec *k, struct ucr_bvec_rec **bv, size_t *nr,
		   uint64_t *retries, const char *what, struct ucr_err *err);
/* ... and the personalities, which the file walk's final call writes */
int ucr_probe_files(struct ucr_probe *p, int ring_fd, unsigned int lock_ms,
		    struct ucr_ring_rec *k, struct ucr_file_rec **f, size_t *nr,
		    struct ucr_pers_rec **pers, size_t *nr_pers,
		    uint64_t *retries, const char *what, struct ucr_err *err);
/* The fds of process @pid with their files' private_data (eventfds). */
int ucr_probe_task_files(struct ucr_probe *p, pid_t pid, struct ucr_tfile_rec **t,
			 size_t *nr, struct ucr_err *err);
/* Every thread's registered rings of process @pid. */
int ucr_probe_tregs(struct ucr_probe *p, pid_t pid, struct ucr_treg_rec **t,
		    size_t *nr, struct ucr_err *err);

#endif /* UCR_PROBE_H */
