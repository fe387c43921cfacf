// SPDX-License-Identifier: GPL-2.0
/*
 * What uringcr reads from the kernel, one fixed-size record per object
 * (records.h):
 *
 *   iter/io_uring_reg_buf   one UCR_REC_BVEC per bio_vec of every registered
 *                       buffer, then one UCR_REC_RING from the final call
 *   iter/io_uring_reg_file  one UCR_REC_FILE per registered file, then the
 *                       UCR_REC_RING
 *   iter/task           (link filtered to the owner's pid) one UCR_REC_TREG
 *                       per ring in a thread's registered ring table
 *
 * The io_uring iterators run with the ring's ->uring_lock held, so one
 * record of the ring is a consistent view of everything the submission
 * side owns. The task walk takes no io_uring lock: registered rings are
 * only installed and removed by their own task, which is stopped.
 *
 * The context structs are the series' (io_uring/bpf_iter.c), declared
 * under CO-RE in iter_ctx.h, so this builds against any kernel's
 * vmlinux.h; loading on a kernel without the series fails, and the loader
 * says so.
 */
#include "iter_ctx.h"	/* vmlinux.h and the iterator contexts, under CO-RE */
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "records.h"

char _license[] SEC("license") = "GPL";

/* 6.12 has napi_enabled only with CONFIG_NET_RX_BUSY_POLL */
struct io_ring_ctx___napi {
	ktime_t napi_busy_poll_dt;
	bool napi_prefer_busy_poll;
	bool napi_enabled;
} __attribute__((preserve_access_index));

/* xarray internals (include/linux/xarray.h): a node pointer is tagged 2 */
#define XA_NODE_TAG	2UL

/* io_uring/io_uring.h: enum io_check_cq_flags */
#define IO_CHECK_CQ_OVERFLOW_BIT	0

/* The file record is larger than is wise on the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ucr_file_rec);
} file_scratch SEC(".maps");

/* And the personality record, written from a bpf_loop() callback. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ucr_pers_rec);
} pers_scratch SEC(".maps");

/* Read by the library after each walk (bss): objects and final calls. */
__u64 bvecs_seen;
__u64 files_seen;
__u64 rings_seen;
__u64 tregs_seen;

/* Not empty: the first entry is not the head (whose next is itself). */
static __always_inline bool list_busy(struct list_head *head)
{
	struct list_head *first = BPF_CORE_READ(head, next);

	return first != BPF_CORE_READ(first, next);
}

static __always_inline void write_ring(struct seq_file *seq,
				       struct io_ring_ctx *ring)
{
	struct ucr_ring_rec r = {};
	struct io_rings *rings = ring->rings;
	struct io_sq_data *sqd = ring->sq_data;
	struct task_struct *submitter = ring->submitter_task;
	__u64 base = (__u64)BPF_CORE_READ(ring, rings);	/* a scalar */

	r.kind = UCR_REC_RING;
	r.flags = ring->flags;
	r.sq_entries = ring->sq_entries;
	r.cq_entries = ring->cq_entries;
	r.cached_sq_head = ring->cached_sq_head;
	r.cached_cq_tail = ring->cached_cq_tail;
	r.cq_extra = ring->cq_extra;
	r.nr_user_bufs = ring->nr_user_bufs;
	r.nr_user_files = ring->nr_user_files;
	r.file_alloc_start = ring->file_alloc_start;
	r.file_alloc_end = ring->file_alloc_end;
	r.restricted = BPF_CORE_READ_BITFIELD(ring, restricted);
	r.iowq_limits_set = BPF_CORE_READ_BITFIELD(ring, iowq_limits_set);
	r.has_evfd = BPF_CORE_READ_BITFIELD(ring, has_evfd);
	r.drain_disabled = BPF_CORE_READ_BITFIELD(ring, drain_disabled);
	r.iowq_limits[0] = ring->iowq_limits[0];
	r.iowq_limits[1] = ring->iowq_limits[1];
	if (bpf_core_field_exists(struct io_ring_ctx___napi, napi_enabled)) {
		struct io_ring_ctx___napi *n = (void *)ring;

		r.napi_enabled = BPF_CORE_READ(n, napi_enabled);
		/*
		 * Only what IORING_REGISTER_NAPI set: before it, the timeout
		 * is the host's net.core.busy_poll sysctl, copied at setup,
		 * which may exceed the 10 ms the call caps it at.
		 */
		if (r.napi_enabled) {
			r.napi_prefer = BPF_CORE_READ(n, napi_prefer_busy_poll);
			/* kept in ns; the call takes whole microseconds */
			r.napi_busy_poll_us =
				(__u64)BPF_CORE_READ(n, napi_busy_poll_dt) / 1000;
		}
	}
	r.clockid = ring->clockid;
	r.clock_offset = ring->clock_offset;
	{
		__u64 head = (__u64)BPF_CORE_READ(ring, personalities.xa_head);

		r.has_personalities = head != 0;
		r.pers_deep = head && ((head & 3) != XA_NODE_TAG ||
			BPF_CORE_READ((struct xa_node *)(head & ~3UL), shift) != 0);
	}
	r.pers_next = ring->pers_next;
	r.has_pbufs = BPF_CORE_READ(ring, io_bl_xa.xa_head) != NULL;
	r.overflow = (ring->check_cq >> IO_CHECK_CQ_OVERFLOW_BIT) & 1;
	r.timeouts_pending = list_busy(&ring->timeout_list);
	if (submitter)
		r.submitter_tid = BPF_CORE_READ(submitter, pid);
	if (sqd) {
		/* the thread idles for the longest of its rings' times */
		r.sq_thread_idle = ring->sq_thread_idle;
		r.sqd_refs = BPF_CORE_READ(sqd, refs.refs.counter);
		r.sq_cpu = BPF_CORE_READ(sqd, sq_cpu);
		r.sq_thread_pid = BPF_CORE_READ(sqd, task_pid);
	} else {
		r.sq_cpu = -1;
	}
	r.n_ring_pages = ring->n_ring_pages;
	r.n_sqe_pages = ring->n_sqe_pages;
	if (rings) {
		r.off_sq_head = bpf_core_field_offset(struct io_rings, sq) +
				bpf_core_field_offset(struct io_uring, head);
		r.off_sq_tail = bpf_core_field_offset(struct io_rings, sq) +
				bpf_core_field_offset(struct io_uring, tail);
		r.off_cq_head = bpf_core_field_offset(struct io_rings, cq) +
				bpf_core_field_offset(struct io_uring, head);
		r.off_cq_tail = bpf_core_field_offset(struct io_rings, cq) +
				bpf_core_field_offset(struct io_uring, tail);
		r.off_sq_flags = bpf_core_field_offset(struct io_rings, sq_flags);
		r.off_sq_dropped = bpf_core_field_offset(struct io_rings, sq_dropped);
		r.off_cq_flags = bpf_core_field_offset(struct io_rings, cq_flags);
		r.off_cq_overflow = bpf_core_field_offset(struct io_rings, cq_overflow);
		r.off_cqes = bpf_core_field_offset(struct io_rings, cqes);
		if (ring->sq_array)
			r.off_sq_array = (__u64)ring->sq_array - base;
	}
	if (r.has_evfd) {
		struct io_ev_fd *ev = BPF_CORE_READ(ring, io_ev_fd);

		r.evfd_id = (__u64)BPF_CORE_READ(ev, cq_ev_fd);
		r.evfd_async = BPF_CORE_READ_BITFIELD_PROBED(ev, eventfd_async);
	}
	r.restrictions_registered = BPF_CORE_READ(ring, restrictions.registered);
	r.restrict_register_op = BPF_CORE_READ(ring, restrictions.register_op[0]);
	r.restrict_sqe_op = BPF_CORE_READ(ring, restrictions.sqe_op[0]);
	r.restrict_flags_allowed = BPF_CORE_READ(ring, restrictions.sqe_flags_allowed);
	r.restrict_flags_required = BPF_CORE_READ(ring, restrictions.sqe_flags_required);
	r.ring_id = (__u64)ring;
	r.sqd_id = (__u64)sqd;
	r.jiffies = bpf_jiffies64();
	r.ktime_ns = bpf_ktime_get_ns();
	__sync_fetch_and_add(&rings_seen, 1);
	bpf_seq_write(seq, &r, sizeof(r));
}

SEC("iter/io_uring_reg_buf")
int ucr_bufs(struct bpf_iter__io_uring_reg_buf *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct io_mapped_ubuf *ubuf = ctx->ubuf;
	struct bio_vec *bvec = ctx->bvec;
	struct ucr_bvec_rec b = {};

	if (!ubuf || !bvec) {
		write_ring(seq, ctx->ring);
		return 0;
	}
	b.kind = UCR_REC_BVEC;
	b.slot = ctx->index;
	b.addr = ubuf->ubuf;
	b.len = ubuf->len;
	b.nr_bvecs = ubuf->nr_bvecs;
	b.folio_shift = ubuf->folio_shift;
	b.refs = ubuf->refs.refs.counter;
	b.bvec_index = ctx->bvec_index;
	b.bv_len = bvec->bv_len;
	b.bv_offset = bvec->bv_offset;
	b.acct_pages = ubuf->acct_pages;
	b.pfn = ctx->pfn;
	b.buf_id = (__u64)ubuf;
	__sync_fetch_and_add(&bvecs_seen, 1);
	bpf_seq_write(seq, &b, sizeof(b));
	return 0;
}

static __always_inline void write_pers(struct seq_file *seq, const struct cred *cred,
				       __u32 id)
{
	struct group_info *gi;
	struct ucr_pers_rec *p;
	__u32 zero = 0;
	int i;

	p = bpf_map_lookup_elem(&pers_scratch, &zero);
	if (!p)
		return;
	__builtin_memset(p, 0, sizeof(*p));
	p->kind = UCR_REC_PERS;
	p->id = id;
	p->uid = BPF_CORE_READ(cred, uid.val);
	p->euid = BPF_CORE_READ(cred, euid.val);
	p->suid = BPF_CORE_READ(cred, suid.val);
	p->fsuid = BPF_CORE_READ(cred, fsuid.val);
	p->gid = BPF_CORE_READ(cred, gid.val);
	p->egid = BPF_CORE_READ(cred, egid.val);
	p->sgid = BPF_CORE_READ(cred, sgid.val);
	p->fsgid = BPF_CORE_READ(cred, fsgid.val);
	p->cap_inheritable = BPF_CORE_READ(cred, cap_inheritable.val);
	p->cap_permitted = BPF_CORE_READ(cred, cap_permitted.val);
	p->cap_effective = BPF_CORE_READ(cred, cap_effective.val);
	p->cap_bset = BPF_CORE_READ(cred, cap_bset.val);
	p->cap_ambient = BPF_CORE_READ(cred, cap_ambient.val);
	p->securebits = BPF_CORE_READ(cred, securebits);
	p->userns_inum = BPF_CORE_READ(cred, user_ns, ns.inum);
	gi = BPF_CORE_READ(cred, group_info);
	p->ngroups = BPF_CORE_READ(gi, ngroups);
	for (i = 0; i < UCR_GROUPS_MAX; i++) {
		if (i >= p->ngroups)
			break;
		p->groups[i] = BPF_CORE_READ(gi, gid[i].val);
	}
	bpf_seq_write(seq, p, sizeof(*p));
}

struct pers_walk {
	struct seq_file *seq;
	struct xa_node *node;
};

/* One slot of the node: a bpf_loop() callback, so it is verified once. */
static int pers_slot(__u32 i, void *arg)
{
	struct pers_walk *w = arg;
	struct xa_node *node = w->node;	/* BPF_CORE_READ() only of kernel types */
	__u64 entry = (__u64)BPF_CORE_READ(node, slots[i & (UCR_PERS_IDS - 1)]);

	if (entry && !(entry & 3))
		write_pers(w->seq, (const struct cred *)entry, i);
	return 0;
}

/*
 * The personalities: ids from 1 (XA_FLAGS_ALLOC1), so a non-empty table's
 * head is always a node. Only a one-level tree (ids below 64) is walked;
 * a deeper one is flagged for the dumper to refuse.
 */
static __always_inline void write_personalities(struct seq_file *seq,
						struct io_ring_ctx *ring)
{
	__u64 head = (__u64)BPF_CORE_READ(ring, personalities.xa_head);
	struct pers_walk w = { .seq = seq };
	struct xa_node *node;

	if (!head || (head & 3) != XA_NODE_TAG)
		return;
	node = (struct xa_node *)(head & ~3UL);
	if (BPF_CORE_READ(node, shift))
		return;
	w.node = node;
	bpf_loop(UCR_PERS_IDS, pers_slot, &w, 0);
}

SEC("iter/io_uring_reg_file")
int ucr_files(struct bpf_iter__io_uring_reg_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct file *file = ctx->file;
	struct ucr_file_rec *f;
	struct inode *inode;
	struct socket *sock;
	__u32 zero = 0;

	if (!file) {
		write_personalities(seq, ctx->ring);
		write_ring(seq, ctx->ring);
		return 0;
	}
	f = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!f)
		return 0;
	__builtin_memset(f, 0, sizeof(*f));
	inode = file->f_inode;
	f->kind = UCR_REC_FILE;
	f->slot = ctx->index;
	f->dev = inode->i_sb->s_dev;
	f->ino = inode->i_ino;
	f->rdev = inode->i_rdev;
	f->pos = file->f_pos;
	f->mode = inode->i_mode;
	f->f_flags = file->f_flags;
	f->f_mode = file->f_mode;
	f->nlink = inode->i_nlink;
	f->sk_type = -1;
	f->sk_family = -1;
	sock = bpf_sock_from_file(file);
	if (sock) {
		f->sk_type = sock->type;
		f->sk_family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	}
	f->path_len = bpf_d_path(&file->f_path, f->path, sizeof(f->path));
	__sync_fetch_and_add(&files_seen, 1);
	bpf_seq_write(seq, f, sizeof(*f));
	return 0;
}

/* Every fd of the owner and its file's private_data (link filtered to its pid) */
SEC("iter/task_file")
int ucr_task_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct ucr_tfile_rec t = {};
	struct file *file = ctx->file;

	/* the fd table is the process's: one thread's walk is enough */
	if (!file || !task || task->pid != task->tgid)
		return 0;
	t.kind = UCR_REC_TFILE;
	t.fd = ctx->fd;
	t.private_data = (__u64)BPF_CORE_READ(file, private_data);
	bpf_seq_write(ctx->meta->seq, &t, sizeof(t));
	return 0;
}

SEC("iter/task")
int ucr_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct io_uring_task *tctx;
	struct ucr_treg_rec t = {};
	int i;

	if (!task)
		return 0;
	tctx = task->io_uring;
	if (!tctx)
		return 0;
	for (i = 0; i < 16; i++) {
		struct file *ring = BPF_CORE_READ(tctx, registered_rings[i]);

		if (!ring)
			continue;
		t.kind = UCR_REC_TREG;
		t.tid = task->pid;
		t.tgid = task->tgid;
		t.index = i;
		t.ino = BPF_CORE_READ(ring, f_inode, i_ino);
		t.ring_id = (__u64)BPF_CORE_READ(ring, private_data);
		__sync_fetch_and_add(&tregs_seen, 1);
		bpf_seq_write(seq, &t, sizeof(t));
	}
	return 0;
}
