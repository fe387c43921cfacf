/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The records the iterator programs (uringcr.bpf.c) write with
 * bpf_seq_write() and the library reads back (lib/probe.c): fixed-size,
 * native-endian, each starting with its kind, so a walk is a plain array
 * that any read(2) size can cut and the reader can check record by record.
 *
 * Included by the BPF object (after vmlinux.h) and by C userspace (after
 * <linux/types.h>); nothing here depends on either beyond __u32/__u64.
 */
#ifndef UCR_RECORDS_H
#define UCR_RECORDS_H

enum ucr_rec_kind {
	UCR_REC_RING = 0x52494e47,	/* "RING": the final call of a walk */
	UCR_REC_BVEC = 0x42564543,	/* "BVEC": one bio_vec of a buffer */
	UCR_REC_FILE = 0x46494c45,	/* "FILE": one registered file */
	UCR_REC_TREG = 0x54524547,	/* "TREG": a task's registered ring */
	UCR_REC_PERS = 0x50455253,	/* "PERS": a registered personality */
	UCR_REC_TFILE = 0x5446494c,	/* "TFIL": a file of the owner's fd table */
};

#define UCR_PATH_MAX	256
#define UCR_GROUPS_MAX	32	/* supplementary groups a personality record holds */
#define UCR_PERS_IDS	64	/* ids the walk sees: one xarray node */

/*
 * A ring as its iterator's final call sees it, with ->uring_lock held
 * (->start() took it): io_ring_ctx fields that no UAPI reports.
 */
struct ucr_ring_rec {
	__u32 kind;
	__u32 flags;			/* ctx->flags: IORING_SETUP_* in effect */
	__u32 sq_entries;
	__u32 cq_entries;
	__u32 cached_sq_head;		/* kernel-owned SQ head */
	__u32 cached_cq_tail;		/* kernel-owned CQ tail */
	__u32 cq_extra;			/* for the IOSQE_IO_DRAIN condition */
	__u32 nr_user_bufs;
	__u32 nr_user_files;
	__u32 file_alloc_start;
	__u32 file_alloc_end;
	__u32 restricted;		/* REGISTER_RESTRICTIONS applied */
	__u32 iowq_limits_set;
	__u32 iowq_limits[2];		/* bounded, unbounded */
	__u32 has_evfd;			/* a registered eventfd */
	__u32 napi_enabled;		/* IORING_REGISTER_NAPI: */
	__u32 napi_busy_poll_us;	/*  busy_poll_to */
	__u32 napi_prefer;		/*  prefer_busy_poll */
	__s32 clockid;
	__u32 clock_offset;		/* enum tk_offsets */
	__u32 has_personalities;	/* ctx->personalities not empty */
	__u32 pers_deep;		/* ids beyond the first node: not walked */
	__u32 pers_next;
	__u32 has_pbufs;		/* ctx->io_bl_xa not empty */
	__u32 overflow;			/* CQEs waiting on cq_overflow_list */
	__u32 timeouts_pending;		/* ctx->timeout_list not empty */
	__u32 submitter_tid;		/* SINGLE_ISSUER's task, 0 if none yet */
	__u32 sq_thread_idle;		/* jiffies, the ring's own */
	__s32 sq_cpu;			/* SQPOLL thread's CPU as it last ran */
	__u32 sq_thread_pid;
	__u32 n_ring_pages;		/* mmap size of the SQ/CQ rings */
	__u32 n_sqe_pages;		/* mmap size of the SQE array */
	__u32 off_sq_head;		/* io_rings layout, as setup reports it */
	__u32 off_sq_tail;
	__u32 off_sq_flags;
	__u32 off_sq_dropped;
	__u32 off_sq_array;		/* 0: IORING_SETUP_NO_SQARRAY */
	__u32 off_cq_head;
	__u32 off_cq_tail;
	__u32 off_cq_flags;
	__u32 off_cq_overflow;
	__u32 off_cqes;
	__u64 ring_id;			/* the io_ring_ctx's address: identity only */
	__u64 sqd_id;			/* its io_sq_data (ATTACH_WQ shares one) */
	__u64 jiffies;			/* bpf_jiffies64() and */
	__u64 ktime_ns;			/* bpf_ktime_get_ns() at the same call */
	__u64 evfd_id;			/* the registered eventfd's eventfd_ctx */
	__u32 evfd_async;		/* IORING_REGISTER_EVENTFD_ASYNC */
	__u32 restrictions_registered;
	__u64 restrict_register_op;	/* bitmaps of IORING_REGISTER_* and */
	__u64 restrict_sqe_op;		/* IORING_OP_* allowed */
	__u32 restrict_flags_allowed;
	__u32 restrict_flags_required;
	__u32 drain_disabled;		/* IOSQE_CQE_SKIP_SUCCESS was used */
	__u32 sqd_refs;			/* rings on the SQPOLL thread (ATTACH_WQ) */
};

/* One bio_vec of a registered buffer (one object of io_uring_reg_buf). */
struct ucr_bvec_rec {
	__u32 kind;
	__u32 slot;
	__u64 addr;			/* io_mapped_ubuf: user address, */
	__u64 len;			/* length, */
	__u32 nr_bvecs;
	__u32 folio_shift;
	__u32 refs;			/* > 1: shared with another ring */
	__u32 bvec_index;
	__u32 bv_len;
	__u32 bv_offset;
	__u64 acct_pages;
	__u64 pfn;
	__u64 buf_id;			/* the io_mapped_ubuf's address */
};

/* One registered file (one object of io_uring_reg_file). */
struct ucr_file_rec {
	__u32 kind;
	__u32 slot;
	__u64 dev;			/* inode->i_sb->s_dev (kernel encoding) */
	__u64 ino;
	__u64 rdev;
	__s64 pos;
	__u32 mode;
	__u32 f_flags;
	__u32 f_mode;
	__u32 nlink;
	__s32 sk_type;			/* -1: not a socket */
	__s32 sk_family;
	__s32 path_len;			/* bpf_d_path() result: length or -errno */
	__u32 pad;
	char path[UCR_PATH_MAX];
};

/*
 * A registered personality (IORING_REGISTER_PERSONALITY): its id and the
 * credentials it carries, in the initial namespace's ids. Written before
 * the file walk's ring record, under ->uring_lock.
 */
struct ucr_pers_rec {
	__u32 kind;
	__u32 id;
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
	__u64 cap_inheritable;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_bset;
	__u64 cap_ambient;
	__u32 securebits;
	__u32 userns_inum;		/* the cred's user namespace */
	__s32 ngroups;
	__u32 pad;
	__u32 groups[UCR_GROUPS_MAX];
};

/* An fd of the owner (iter/task_file): what its file points to. */
struct ucr_tfile_rec {
	__u32 kind;
	__u32 fd;
	__u64 private_data;		/* an eventfd's eventfd_ctx */
};

/* A ring in a task's registered ring table (IORING_REGISTER_RING_FDS). */
struct ucr_treg_rec {
	__u32 kind;
	__u32 tid;
	__u32 tgid;
	__u32 index;
	__u64 ino;			/* the ring file's inode */
	__u64 ring_id;			/* file->private_data */
};

#endif /* UCR_RECORDS_H */
