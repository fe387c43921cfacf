/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmlinux.h with the series' iterator contexts (io_uring/bpf_iter.c)
 * declared under CO-RE, as selftests/bpf/progs/bpf_iter.h does: a BPF
 * object including this builds against any kernel's vmlinux.h, with or
 * without the series, and loading it on a kernel without the series fails
 * (its loader says so). Included instead of vmlinux.h by uringcr.bpf.c and
 * by guest-tests/bpf/uring_iter.bpf.c.
 */
#ifndef UCR_ITER_CTX_H
#define UCR_ITER_CTX_H

#define bpf_iter__io_uring_reg_buf bpf_iter__io_uring_buf___from_vmlinux
#define bpf_iter__io_uring_reg_file bpf_iter__io_uring_file___from_vmlinux
#include "vmlinux.h"
#undef bpf_iter__io_uring_reg_buf
#undef bpf_iter__io_uring_reg_file

struct bpf_iter__io_uring_reg_buf {
	struct bpf_iter_meta *meta;
	struct io_ring_ctx *ring;
	struct io_mapped_ubuf *ubuf;
	struct bio_vec *bvec;
	__u64 index;
	__u64 bvec_index;
	__u64 pfn;
} __attribute__((preserve_access_index));

struct bpf_iter__io_uring_reg_file {
	struct bpf_iter_meta *meta;
	struct io_ring_ctx *ring;
	struct file *file;
	__u64 index;
} __attribute__((preserve_access_index));

#endif /* UCR_ITER_CTX_H */
