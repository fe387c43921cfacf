// SPDX-License-Identifier: GPL-2.0
/* Errors, clocks, checksums, escaping and the key=value line parser. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "internal.h"

int ucr_errf(struct ucr_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

uint64_t ucr_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ucr_pause_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

uint32_t ucr_crc32(uint32_t crc, const void *buf, size_t len)
{
	/* zlib's crc32() takes a uInt length */
	while (len) {
		uInt n = len > (1U << 30) ? (1U << 30) : (uInt)len;

		crc = crc32(crc, buf, n);
		buf = (const char *)buf + n;
		len -= n;
	}
	return crc;
}

void ucr_escape(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *in && o + 4 < size; in++) {
		unsigned char c = *in;

		if (c > ' ' && c < 0x7f && c != '%') {
			out[o++] = c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int ucr_unescape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = *in;

		if (o + 1 >= size)
			return -1;
		if (c == '%') {
			int hi = hexval(in[1]), lo = hi < 0 ? -1 : hexval(in[2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = hi << 4 | lo;
			in += 2;
		} else if (c > ' ' && c < 0x7f) {
			out[o++] = c;
		} else {
			return -1;
		}
	}
	out[o] = '\0';
	return 0;
}

int ucr_kv_parse(struct ucr_kv *kv, const char *line)
{
	char *p, *save = NULL, *tok;
	size_t len = strlen(line);

	memset(kv, 0, sizeof(*kv));
	if (len >= sizeof(kv->buf))
		return -1;
	memcpy(kv->buf, line, len + 1);
	if (len && kv->buf[len - 1] == '\n')
		kv->buf[--len] = '\0';
	p = strtok_r(kv->buf, " ", &save);
	if (!p || strlen(p) >= sizeof(kv->name) || strchr(p, '='))
		return -1;
	strcpy(kv->name, p);
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(tok, '=');
		unsigned int i;

		if (!eq || eq == tok || kv->nr == 32)
			return -1;
		*eq = '\0';
		for (i = 0; i < kv->nr; i++)
			if (!strcmp(kv->key[i], tok))
				return -1;	/* a key twice */
		kv->key[kv->nr] = tok;
		kv->val[kv->nr++] = eq + 1;
	}
	return 0;
}

static char *kv_get(struct ucr_kv *kv, const char *key)
{
	unsigned int i;

	for (i = 0; i < kv->nr; i++) {
		if (!strcmp(kv->key[i], key)) {
			kv->used |= 1U << i;
			return kv->val[i];
		}
	}
	return NULL;
}

int ucr_kv_u64(struct ucr_kv *kv, const char *key, uint64_t lo, uint64_t hi,
	       uint64_t *v)
{
	const char *s = kv_get(kv, key);
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || *end || *v < lo || *v > hi)
		return -1;
	return 0;
}

int ucr_kv_s64(struct ucr_kv *kv, const char *key, int64_t lo, int64_t hi,
	       int64_t *v)
{
	const char *s = kv_get(kv, key);
	char *end;

	if (!s || !*s || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 0);
	if (errno || *end || *v < lo || *v > hi)
		return -1;
	return 0;
}

const char *ucr_kv_str(struct ucr_kv *kv, const char *key)
{
	return kv_get(kv, key);
}

const char *ucr_kv_unused(const struct ucr_kv *kv)
{
	unsigned int i;

	for (i = 0; i < kv->nr; i++)
		if (!(kv->used & (1U << i)))
			return kv->key[i];
	return NULL;
}

void ucr_ring_free(struct ucr_ring *r)
{
	uint32_t i;

	if (!r)
		return;
	for (i = 0; i < r->nr_used_bufs; i++)
		free(r->bufs[i].bv);
	free(r->bufs);
	free(r->files);
	free(r->pers);
	free(r->sq_array);
	free(r->sqes);
	free(r->cqes);
	memset(r, 0, sizeof(*r));
}

void ucr_image_free(struct ucr_image *img)
{
	unsigned int i;

	if (!img)
		return;
	for (i = 0; i < img->nr_rings; i++)
		ucr_ring_free(&img->rings[i]);
	free(img->rings);
	free(img);
}

void ucr_image_close(struct ucr_image *img)
{
	ucr_image_free(img);
}

void ucr_refuse(struct ucr_report *rep, const char *name, int fd,
		const char *fmt, ...)
{
	struct ucr_refusal *r;
	va_list ap;

	if (rep->nr_refusals >= UCR_MAX_REFUSALS)
		return;
	r = &rep->refusals[rep->nr_refusals++];
	r->name = name;
	r->fd = fd;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

static const char *const backing_names[] = {
	[UCR_BACK_ANON] = "anon",
	[UCR_BACK_HUGETLB] = "hugetlb",
	[UCR_BACK_SHARED] = "shared",
	[UCR_BACK_GONE] = "gone",
};

const char *ucr_backing_name(enum ucr_backing b)
{
	return (unsigned int)b < 4 ? backing_names[b] : "?";
}

int ucr_backing_parse(const char *name)
{
	int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(name, backing_names[i]))
			return i;
	return -1;
}

/* The pages under [addr, addr+len) as the buffer's bvecs pin them. */
uint64_t *ucr_buf_pfns(const struct ucr_buf *b, size_t *nr)
{
	size_t n = 0, cap = (b->len >> 12) + 2;
	uint64_t *p = calloc(cap, sizeof(*p));
	uint32_t i;

	if (!p)
		return NULL;
	for (i = 0; i < b->nr_bvecs; i++) {
		uint64_t first = b->bv[i].offset >> 12;
		uint64_t last = (b->bv[i].offset + b->bv[i].len - 1) >> 12;

		for (uint64_t pg = first; pg <= last && n < cap; pg++)
			p[n++] = b->bv[i].pfn + pg;
	}
	*nr = n;
	return p;
}
