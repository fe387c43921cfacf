/* SPDX-License-Identifier: GPL-2.0 */
/* The image writer (image_write.c), used by the dumper. */
#ifndef UCR_IMAGE_H
#define UCR_IMAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* the image directory's own file, and its first line's word */
#define MANIFEST	"manifest"
#define MAGIC		"uringcr-image"

struct ucr_wpart {
	char name[64];
	uint64_t size;
	uint32_t crc;
};

struct ucr_writer {
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
	bool open;
	int fd;			/* the part being written */
	char cur[64];
	uint64_t cur_size;
	uint32_t cur_crc;
	unsigned int nr_parts, cap_parts;
	struct ucr_wpart *parts;
	uint64_t stats_bytes;
};

/* @dir must not exist; the parts go to @dir.partial until ucr_w_commit(). */
int ucr_w_begin(struct ucr_writer *w, const char *dir, struct ucr_err *err);
int ucr_w_part(struct ucr_writer *w, const char *name, const void *data,
	       size_t len, struct ucr_err *err);
/* a part written in pieces */
int ucr_w_part_open(struct ucr_writer *w, const char *name, struct ucr_err *err);
int ucr_w_part_write(struct ucr_writer *w, const void *data, size_t len,
		     struct ucr_err *err);
int ucr_w_part_close(struct ucr_writer *w, struct ucr_err *err);
/* ring<idx>.txt and its arrays */
int ucr_w_ring(struct ucr_writer *w, unsigned int idx, const struct ucr_ring *r,
	       struct ucr_err *err);
/* the manifest, then the rename to @dir */
int ucr_w_commit(struct ucr_writer *w, const struct ucr_image *img,
		 struct ucr_err *err);
/* removes @dir.partial unless committed; frees the part list */
void ucr_w_abort(struct ucr_writer *w);

#endif /* UCR_IMAGE_H */
