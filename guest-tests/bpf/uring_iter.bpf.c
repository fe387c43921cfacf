// SPDX-License-Identifier: GPL-2.0
/*
 * iter/io_uring_reg_buf and iter/io_uring_reg_file: print every field of the
 * iterator context, and what the pointers in it lead to, as key=value
 * lines for test_uring_iter.py, which checks them against what
 * c/iter_*.c registered and against views that do not come from the
 * iterator (pagemap, fstat, fdinfo, VmPin).
 *
 * The context structs are the series' (io_uring/bpf_iter.c), declared
 * under CO-RE in uringcr/bpf/iter_ctx.h (shared with uringcr's object), so
 * this builds against a vmlinux.h without them (a kernel without the
 * series); loading then fails, and the loader reports that.
 */
#include "iter_ctx.h"	/* vmlinux.h and the iterator contexts, under CO-RE */
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

/* Read by the loader through the skeleton after each walk. */
__u64 buf_objects;
__u64 buf_stops;
__u64 file_objects;
__u64 file_stops;

/* The ring's own view, printed once per walk from the final call. */
static __always_inline void print_ring(struct seq_file *seq, const char *what,
		       struct bpf_iter_meta *meta, struct io_ring_ctx *ring)
{
	BPF_SEQ_PRINTF(seq, "end %s ring=%llx seq_num=%llu", what,
		       (__u64)ring, meta->seq_num);
	BPF_SEQ_PRINTF(seq, " nr_user_bufs=%u nr_user_files=%u",
		       ring->nr_user_bufs, ring->nr_user_files);
	BPF_SEQ_PRINTF(seq, " sq_entries=%u cq_entries=%u setup_flags=%x",
		       ring->sq_entries, ring->cq_entries, ring->flags);
	/* layout the loader needs to check pointers against each other */
	BPF_SEQ_PRINTF(seq, " bvec_array_off=%u bio_vec_size=%u page_size=%u\n",
		       (__u32)bpf_core_field_offset(struct io_mapped_ubuf, bvec),
		       (__u32)bpf_core_type_size(struct bio_vec),
		       (__u32)bpf_core_type_size(struct page));
}

SEC("iter/io_uring_reg_buf")
int dump_buf(struct bpf_iter__io_uring_reg_buf *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct io_mapped_ubuf *ubuf = ctx->ubuf;
	struct io_ring_ctx *ring = ctx->ring;
	struct bio_vec *bvec = ctx->bvec;
	struct io_mapped_ubuf *tbl = NULL;
	struct io_mapped_ubuf **slots;

	if (!ubuf || !bvec) {
		/* the final call: neither may be set */
		if (ubuf || bvec)
			BPF_SEQ_PRINTF(seq, "bad final call ubuf=%llx bvec=%llx\n",
				       (__u64)ubuf, (__u64)bvec);
		__sync_fetch_and_add(&buf_stops, 1);
		print_ring(seq, "buf", ctx->meta, ring);
		return 0;
	}
	__sync_fetch_and_add(&buf_objects, 1);

	/* the table entry the slot index names, read independently */
	slots = BPF_CORE_READ(ring, user_bufs);
	bpf_probe_read_kernel(&tbl, sizeof(tbl), &slots[ctx->index]);

	BPF_SEQ_PRINTF(seq, "buf seq=%llu ring=%llx slot=%llu tbl=%llx ubuf=%llx",
		       ctx->meta->seq_num, (__u64)ring, ctx->index, (__u64)tbl,
		       (__u64)ubuf);
	BPF_SEQ_PRINTF(seq, " addr=%llx len=%u nr_bvecs=%u folio_shift=%u",
		       ubuf->ubuf, ubuf->len, ubuf->nr_bvecs, ubuf->folio_shift);
	BPF_SEQ_PRINTF(seq, " refs=%d acct_pages=%lu", ubuf->refs.refs.counter,
		       ubuf->acct_pages);
	BPF_SEQ_PRINTF(seq, " bvec=%llx bvec_index=%llu bv_page=%llx",
		       (__u64)bvec, ctx->bvec_index, (__u64)bvec->bv_page);
	BPF_SEQ_PRINTF(seq, " bv_len=%u bv_offset=%u pfn=%llx\n",
		       bvec->bv_len, bvec->bv_offset, ctx->pfn);
	return 0;
}

SEC("iter/io_uring_reg_file")
int dump_file(struct bpf_iter__io_uring_reg_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct io_ring_ctx *ring = ctx->ring;
	struct file *file = ctx->file;
	struct io_fixed_file *slots;
	struct inode *inode;
	struct socket *sock;
	__u64 tbl = 0;
	int sk_type = -1, sk_family = -1;

	if (!file) {
		__sync_fetch_and_add(&file_stops, 1);
		print_ring(seq, "file", ctx->meta, ring);
		return 0;
	}
	__sync_fetch_and_add(&file_objects, 1);

	slots = BPF_CORE_READ(ring, file_table.files);
	bpf_probe_read_kernel(&tbl, sizeof(tbl), &slots[ctx->index].file_ptr);

	inode = file->f_inode;
	sock = bpf_sock_from_file(file);
	if (sock) {
		sk_type = sock->type;
		sk_family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	}

	BPF_SEQ_PRINTF(seq, "file ring=%llx slot=%llu tbl=%llx file=%llx",
		       (__u64)ring, ctx->index, tbl, (__u64)file);
	/* bpf_seq_printf() has no %o */
	BPF_SEQ_PRINTF(seq, " seq=%llu ino=%lu dev=%x rdev=%x mode=%x",
		       ctx->meta->seq_num, inode->i_ino,
		       inode->i_sb->s_dev, inode->i_rdev, inode->i_mode);
	BPF_SEQ_PRINTF(seq, " f_flags=%x f_mode=%x pos=%lld count=%ld",
		       file->f_flags, file->f_mode, file->f_pos,
		       file->f_count.counter);
	BPF_SEQ_PRINTF(seq, " sk_type=%d sk_family=%d name=%s\n", sk_type,
		       sk_family, file->f_path.dentry->d_iname);
	return 0;
}

/*
 * Count the objects of a walk and print only "count <objects>" at its end,
 * so that one read(2) visits a whole table (c/iter_hold.c).
 */
SEC("iter/io_uring_reg_buf")
int count_buf(struct bpf_iter__io_uring_reg_buf *ctx)
{
	if (!ctx->ubuf) {
		BPF_SEQ_PRINTF(ctx->meta->seq, "count %llu\n", buf_objects);
		return 0;
	}
	__sync_fetch_and_add(&buf_objects, 1);
	return 0;
}

SEC("iter/io_uring_reg_file")
int count_file(struct bpf_iter__io_uring_reg_file *ctx)
{
	if (!ctx->file) {
		BPF_SEQ_PRINTF(ctx->meta->seq, "count %llu\n", file_objects);
		return 0;
	}
	__sync_fetch_and_add(&file_objects, 1);
	return 0;
}

/* Only attached, never read: a BPF link fd that is not a ring. */
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	return 0;
}
