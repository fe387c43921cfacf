/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The library's own model of a dumped ring, shared by the dumper (dump.c),
 * the image writer and reader (image_write.c, image_read.c) and show.c.
 * Not installed.
 */
#ifndef UCR_INTERNAL_H
#define UCR_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "uringcr.h"
#include "../bpf/records.h"

#define UCR_MAX_RINGS		64
#define UCR_MAX_SLOTS		(1U << 20)	/* io_uring's file table limit */
#define UCR_MAX_BUFS		(1U << 14)	/* IORING_MAX_REG_BUFFERS */
#define UCR_MAX_ENTRIES		32768		/* IORING_MAX_ENTRIES */
#define UCR_MAX_CQ_ENTRIES	(2 * UCR_MAX_ENTRIES)
#define UCR_MAX_BUF_LEN		(1ULL << 30)	/* SZ_1G, io_uring's limit */

struct ucr_bvec {
	uint64_t pfn;
	uint32_t len;
	uint32_t offset;
};

/* What backed a buffer's address in the owner at the dump (/proc/PID/maps) */
enum ucr_backing {
	UCR_BACK_ANON,		/* private memory, THP where folio_shift says so */
	UCR_BACK_HUGETLB,	/* hugetlb pages of 1 << folio_shift */
	UCR_BACK_SHARED,	/* a shared mapping of the file at backing_path */
	UCR_BACK_GONE,		/* not mapped by its pinned pages any more */
};

struct ucr_buf {
	uint32_t slot;
	uint64_t addr;
	uint64_t len;
	uint32_t folio_shift;
	uint32_t nr_bvecs;
	uint32_t refs;
	uint64_t acct_pages;
	uint64_t id;		/* kernel identity: equal ids are one buffer */
	struct ucr_bvec *bv;
	uint32_t have_bv;	/* bvecs seen so far (dump) */
	bool mapped;		/* still mapped at addr by the pages it pins */
	enum ucr_backing backing;
	uint64_t backing_off;	/* UCR_BACK_SHARED: the file offset of addr */
	char backing_path[UCR_PATH_MAX];
};

struct ucr_file {
	uint32_t slot;
	uint64_t dev;
	uint64_t ino;
	uint64_t rdev;
	int64_t pos;
	uint32_t mode;
	uint32_t f_flags;
	uint32_t f_mode;
	uint32_t nlink;
	int32_t sk_type;
	int32_t sk_family;
	char path[UCR_PATH_MAX];
};

/* One of the owner's mappings of the ring (IORING_OFF_*) */
struct ucr_map {
	uint64_t start;
	uint64_t end;
	uint64_t pgoff;
};

struct ucr_ring {
	int fd;			/* in the owner */
	uint64_t ino;		/* the ring file's inode */
	int reg_tid;		/* registered ring fd: thread and index, or -1 */
	int reg_index;
	struct ucr_ring_rec k;	/* the kernel's view (the final iterator call) */
	/* the ring memory as the dumper mapped it */
	uint32_t sq_head, sq_tail, cq_head, cq_tail;
	uint32_t sq_flags, cq_flags, sq_dropped, cq_overflow;
	uint32_t sqe_size, cqe_size;
	uint32_t sq_thread_idle_ms;
	int sq_share;		/* SQPOLL: the image's first ring on its SQ thread; -1 */
	uint32_t *sq_array;	/* sq_entries, or NULL with NO_SQARRAY */
	void *sqes;		/* sq_entries * sqe_size */
	void *cqes;		/* cq_entries * cqe_size */
	unsigned int nr_maps;
	struct ucr_map maps[4];
	uint32_t nr_bufs;	/* slots */
	uint32_t nr_used_bufs;
	struct ucr_buf *bufs;	/* nr_used_bufs, by slot */
	uint32_t nr_files;	/* slots */
	uint32_t nr_used_files;
	struct ucr_file *files;	/* nr_used_files, by slot */
	uint32_t nr_pers;
	struct ucr_pers_rec *pers;	/* by id */
	int evfd;		/* the registered eventfd's fd in the owner, or -1 */
	uint64_t evfd_count;
};

struct ucr_image {
	char dir[4096];
	int version;
	int pid;
	char comm[64];
	unsigned int nr_rings;
	struct ucr_ring *rings;
	struct ucr_stats stats;
};

/* util.c */
int ucr_errf(struct ucr_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t ucr_now_us(void);
/* a pause, not a wait on an event: the backoffs of the EDEADLK and drain loops */
void ucr_pause_ms(unsigned int ms);
uint32_t ucr_crc32(uint32_t crc, const void *buf, size_t len);
/* %XX for bytes outside [!-~] and for '%'; @out of 3 * strlen(in) + 1 */
void ucr_escape(const char *in, char *out, size_t size);
int ucr_unescape(const char *in, char *out, size_t size);
void ucr_ring_free(struct ucr_ring *r);
const char *ucr_backing_name(enum ucr_backing b);
/* The pages under the buffer, one pfn per 4 KiB from its first (calloc()ed). */
uint64_t *ucr_buf_pfns(const struct ucr_buf *b, size_t *nr);
int ucr_backing_parse(const char *name);	/* an enum ucr_backing or -1 */
void ucr_image_free(struct ucr_image *img);

/* A "name key=value ..." line, as the image's text parts hold them. */
struct ucr_kv {
	char name[32];
	unsigned int nr;
	char *key[32];
	char *val[32];
	unsigned int used;	/* bit per key that a getter took */
	char buf[2048];
};

int ucr_kv_parse(struct ucr_kv *kv, const char *line);
/* The value of @key in [lo, hi]; -1 if missing, malformed or out of range. */
int ucr_kv_u64(struct ucr_kv *kv, const char *key, uint64_t lo, uint64_t hi,
	       uint64_t *v);
int ucr_kv_s64(struct ucr_kv *kv, const char *key, int64_t lo, int64_t hi,
	       int64_t *v);
const char *ucr_kv_str(struct ucr_kv *kv, const char *key);
/* The first key no getter took, or NULL: unknown keys are errors. */
const char *ucr_kv_unused(const struct ucr_kv *kv);

/* image_write.c, image_read.c */
int ucr_image_write(const struct ucr_image *img, const char *dir,
		    struct ucr_stats *stats, struct ucr_err *err);
/* testing (the fuzzer): rewrite the manifest's sizes and checksums */
int ucr_image_reseal(const char *dir, struct ucr_err *err);

/*
 * share.c: how ring @k of @rings gets back the buffers it shares with
 * other rings of the image. @src: the earlier ring whose table it clones
 * (IORING_REGISTER_CLONE_BUFFERS), or -1; @cloned: per used buffer, whether
 * the clone brings it. 0, -ENOMEM, or -EOPNOTSUPP with @why saying what 6.12
 * cannot rebuild. ucr_share_free() in every case.
 */
struct ucr_share {
	int src;
	bool *cloned;
};

int ucr_share_plan(const struct ucr_ring *rings, unsigned int nr, unsigned int k,
		   struct ucr_share *sh, char *why, size_t size);
void ucr_share_free(struct ucr_share *sh);
/* A plan's refusal: the sentence in @why, -EOPNOTSUPP. */
int ucr_why(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The buffer at @slot of @r (its list is sorted by slot), or NULL. */
const struct ucr_buf *ucr_buf_at(const struct ucr_ring *r, uint32_t slot);

/* The refusal names, one per thing a restore cannot bring back. */
void ucr_refuse(struct ucr_report *rep, const char *name, int fd,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* UCR_INTERNAL_H */
