// SPDX-License-Identifier: GPL-2.0
/* uringcr show and the check/dump report, for people and as JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "uapi.h"

#include "internal.h"

static const struct {
	uint32_t bit;
	const char *name;
} setup_flags[] = {
	{ IORING_SETUP_IOPOLL, "IOPOLL" }, { IORING_SETUP_SQPOLL, "SQPOLL" },
	{ IORING_SETUP_SQ_AFF, "SQ_AFF" }, { IORING_SETUP_CQSIZE, "CQSIZE" },
	{ IORING_SETUP_CLAMP, "CLAMP" }, { IORING_SETUP_ATTACH_WQ, "ATTACH_WQ" },
	{ IORING_SETUP_R_DISABLED, "R_DISABLED" }, { IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL" },
	{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" }, { IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG" },
	{ IORING_SETUP_SQE128, "SQE128" }, { IORING_SETUP_CQE32, "CQE32" },
	{ IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER" }, { IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN" },
	{ IORING_SETUP_NO_MMAP, "NO_MMAP" }, { IORING_SETUP_REGISTERED_FD_ONLY, "REGISTERED_FD_ONLY" },
	{ IORING_SETUP_NO_SQARRAY, "NO_SQARRAY" },
};

void ucr_json_str(FILE *out, const char *s, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
	ucr_json_str(out, s, strlen(s));
}

static void flag_names(FILE *out, uint32_t flags, bool json)
{
	bool first = true;
	size_t i;

	for (i = 0; i < sizeof(setup_flags) / sizeof(setup_flags[0]); i++) {
		if (!(flags & setup_flags[i].bit))
			continue;
		if (json)
			fprintf(out, "%s\"%s\"", first ? "" : ",", setup_flags[i].name);
		else
			fprintf(out, "%s%s", first ? "" : "|", setup_flags[i].name);
		first = false;
	}
	if (first && !json)
		fputs("none", out);
}

/* SQE at ring position @pos (sq array applied) */
static const struct io_uring_sqe *sqe_at(const struct ucr_ring *r, uint32_t pos,
					 uint32_t *index)
{
	uint32_t mask = r->k.sq_entries - 1;

	*index = r->sq_array ? r->sq_array[pos & mask] : (pos & mask);
	if (*index >= r->k.sq_entries)
		return NULL;	/* the kernel drops such an entry (sq_dropped) */
	return (const void *)((const char *)r->sqes + (size_t)*index * r->sqe_size);
}

static const struct io_uring_cqe *cqe_at(const struct ucr_ring *r, uint32_t pos)
{
	uint32_t mask = r->k.cq_entries - 1;

	return (const void *)((const char *)r->cqes + (size_t)(pos & mask) * r->cqe_size);
}

static void ring_json(FILE *out, unsigned int idx, const struct ucr_ring *r)
{
	const struct ucr_ring_rec *k = &r->k;
	uint32_t i, pos;

	fprintf(out, "{\"index\":%u,\"fd\":%d,\"ino\":%" PRIu64 ",", idx, r->fd, r->ino);
	if (r->reg_index >= 0)
		fprintf(out, "\"registered\":{\"tid\":%d,\"index\":%d},", r->reg_tid, r->reg_index);
	else
		fputs("\"registered\":null,", out);
	fprintf(out, "\"setup\":{\"flags\":%u,\"flag_names\":[", k->flags);
	flag_names(out, k->flags, true);
	fprintf(out, "],\"sq_entries\":%u,\"cq_entries\":%u,\"sqe_size\":%u,\"cqe_size\":%u,\"sq_thread_idle_ms\":%u,\"sq_cpu\":%d,\"sq_share\":%d},",
		k->sq_entries, k->cq_entries, r->sqe_size, r->cqe_size, r->sq_thread_idle_ms,
		k->sq_cpu, r->sq_share);
	fprintf(out, "\"state\":{\"enabled\":%s,\"submitter_tid\":%u,\"file_alloc\":[%u,%u],\"iowq_limits_set\":%s,\"iowq_limits\":[%u,%u],\"clockid\":%d,\"clock_offset\":%u,\"napi\":{\"enabled\":%s,\"busy_poll_us\":%u,\"prefer\":%s}},",
		(k->flags & IORING_SETUP_R_DISABLED) ? "false" : "true", k->submitter_tid,
		k->file_alloc_start, k->file_alloc_end, k->iowq_limits_set ? "true" : "false",
		k->iowq_limits[0], k->iowq_limits[1], k->clockid, k->clock_offset,
		k->napi_enabled ? "true" : "false", k->napi_busy_poll_us,
		k->napi_prefer ? "true" : "false");
	fprintf(out, "\"eventfd\":");
	if (r->evfd >= 0)
		fprintf(out, "{\"fd\":%d,\"async\":%s,\"count\":%" PRIu64 "},", r->evfd,
			k->evfd_async ? "true" : "false", r->evfd_count);
	else
		fputs("null,", out);
	fprintf(out, "\"restrictions\":{\"registered\":%s,\"enabled\":%s,\"register_op\":%llu,\"sqe_op\":%llu,\"flags_allowed\":%u,\"flags_required\":%u},",
		k->restrictions_registered ? "true" : "false", k->restricted ? "true" : "false",
		(unsigned long long)k->restrict_register_op, (unsigned long long)k->restrict_sqe_op,
		k->restrict_flags_allowed, k->restrict_flags_required);
	fprintf(out, "\"kernel\":{\"cached_sq_head\":%u,\"cached_cq_tail\":%u,\"cq_extra\":%u,\"drain_disabled\":%s},",
		k->cached_sq_head, k->cached_cq_tail, k->cq_extra,
		k->drain_disabled ? "true" : "false");
	fprintf(out, "\"memory\":{\"sq_head\":%u,\"sq_tail\":%u,\"cq_head\":%u,\"cq_tail\":%u,\"sq_flags\":%u,\"cq_flags\":%u,\"sq_dropped\":%u,\"cq_overflow\":%u},",
		r->sq_head, r->sq_tail, r->cq_head, r->cq_tail, r->sq_flags, r->cq_flags,
		r->sq_dropped, r->cq_overflow);
	fputs("\"maps\":[", out);
	for (i = 0; i < r->nr_maps; i++)
		fprintf(out, "%s{\"start\":%" PRIu64 ",\"end\":%" PRIu64 ",\"pgoff\":%" PRIu64 "}",
			i ? "," : "", r->maps[i].start, r->maps[i].end, r->maps[i].pgoff);
	fputs("],\"sqes_pending\":[", out);
	for (pos = r->sq_head; pos != r->sq_tail; pos++) {
		uint32_t index;
		const struct io_uring_sqe *s = sqe_at(r, pos, &index);

		fprintf(out, "%s{\"position\":%u,\"index\":%u", pos != r->sq_head ? "," : "", pos, index);
		if (s)
			fprintf(out, ",\"opcode\":%u,\"flags\":%u,\"fd\":%d,\"off\":%llu,\"addr\":%llu,\"len\":%u,\"user_data\":%llu",
				s->opcode, s->flags, s->fd, (unsigned long long)s->off,
				(unsigned long long)s->addr, s->len,
				(unsigned long long)s->user_data);
		fputc('}', out);
	}
	fputs("],\"cqes_pending\":[", out);
	for (pos = r->cq_head; pos != r->cq_tail; pos++) {
		const struct io_uring_cqe *c = cqe_at(r, pos);

		fprintf(out, "%s{\"position\":%u,\"user_data\":%llu,\"res\":%d,\"flags\":%u",
			pos != r->cq_head ? "," : "", pos, (unsigned long long)c->user_data, c->res,
			c->flags);
		if (r->cqe_size == 32)
			fprintf(out, ",\"big_cqe\":[%llu,%llu]", (unsigned long long)c->big_cqe[0],
				(unsigned long long)c->big_cqe[1]);
		fputc('}', out);
	}
	fprintf(out, "],\"buffers\":{\"slots\":%u,\"used\":[", r->nr_bufs);
	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		fprintf(out, "%s{\"slot\":%u,\"addr\":%" PRIu64 ",\"len\":%" PRIu64 ",\"folio_shift\":%u,\"nr_bvecs\":%u,\"refs\":%u,\"id\":%" PRIu64 ",\"acct_pages\":%" PRIu64 ",\"mapped\":%s,\"backing\":\"%s\",\"backing_off\":%" PRIu64 ",\"backing_path\":",
			i ? "," : "", b->slot, b->addr, b->len, b->folio_shift, b->nr_bvecs, b->refs,
			b->id, b->acct_pages, b->mapped ? "true" : "false",
			ucr_backing_name(b->backing), b->backing_off);
		json_str(out, b->backing_path);
		fprintf(out, ",\"part\":\"ring%u.buf%u\",\"bvecs\":[", idx, b->slot);
		for (uint32_t j = 0; j < b->nr_bvecs; j++)
			fprintf(out, "%s[%" PRIu64 ",%u,%u]", j ? "," : "", b->bv[j].pfn, b->bv[j].len,
				b->bv[j].offset);
		fputs("]}", out);
	}
	fprintf(out, "]},\"files\":{\"slots\":%u,\"used\":[", r->nr_files);
	for (i = 0; i < r->nr_used_files; i++) {
		const struct ucr_file *f = &r->files[i];

		fprintf(out, "%s{\"slot\":%u,\"dev_major\":%" PRIu64 ",\"dev_minor\":%" PRIu64 ",\"ino\":%" PRIu64 ",\"rdev_major\":%" PRIu64 ",\"rdev_minor\":%" PRIu64 ",\"mode\":%u,\"flags\":%u,\"fmode\":%u,\"pos\":%" PRId64 ",\"nlink\":%u,\"sk_type\":%d,\"sk_family\":%d,\"path\":",
			i ? "," : "", f->slot, f->dev >> 20, f->dev & 0xfffff, f->ino, f->rdev >> 20,
			f->rdev & 0xfffff, f->mode, f->f_flags, f->f_mode, f->pos, f->nlink, f->sk_type,
			f->sk_family);
		json_str(out, f->path);
		fputc('}', out);
	}
	fprintf(out, "]},\"personalities\":{\"next\":%u,\"used\":[", k->pers_next);
	for (i = 0; i < r->nr_pers; i++) {
		const struct ucr_pers_rec *p = &r->pers[i];

		fprintf(out, "%s{\"id\":%u,\"uids\":[%u,%u,%u,%u],\"gids\":[%u,%u,%u,%u],\"groups\":[",
			i ? "," : "", p->id, p->uid, p->euid, p->suid, p->fsuid, p->gid, p->egid,
			p->sgid, p->fsgid);
		for (int g = 0; g < p->ngroups && g < UCR_GROUPS_MAX; g++)
			fprintf(out, "%s%u", g ? "," : "", p->groups[g]);
		fprintf(out, "],\"cap_inheritable\":%llu,\"cap_permitted\":%llu,\"cap_effective\":%llu,\"cap_bset\":%llu,\"cap_ambient\":%llu,\"securebits\":%u,\"userns\":%u}",
			(unsigned long long)p->cap_inheritable, (unsigned long long)p->cap_permitted,
			(unsigned long long)p->cap_effective, (unsigned long long)p->cap_bset,
			(unsigned long long)p->cap_ambient, p->securebits, p->userns_inum);
	}
	fputs("]}}", out);
}

static void ring_text(FILE *out, unsigned int idx, const struct ucr_ring *r)
{
	const struct ucr_ring_rec *k = &r->k;
	uint64_t bytes = 0;
	uint32_t i;

	fprintf(out, "ring %u: fd %d, inode %" PRIu64, idx, r->fd, r->ino);
	if (r->reg_index >= 0)
		fprintf(out, ", registered ring fd %d of thread %d", r->reg_index, r->reg_tid);
	fprintf(out, "\n  setup: %u SQ / %u CQ entries, flags ", k->sq_entries, k->cq_entries);
	flag_names(out, k->flags, false);
	if (k->flags & IORING_SETUP_SQPOLL)
		fprintf(out, ", SQ thread idle %u ms, cpu %d", r->sq_thread_idle_ms, k->sq_cpu);
	if (r->sq_share >= 0 && (unsigned int)r->sq_share != idx)
		fprintf(out, ", on ring %d's SQ thread (ATTACH_WQ)", r->sq_share);
	fprintf(out, "\n  %s", (k->flags & IORING_SETUP_R_DISABLED) ? "disabled (R_DISABLED)" : "enabled");
	if (k->submitter_tid)
		fprintf(out, ", submitter thread %u", k->submitter_tid);
	fprintf(out, ", file allocation range [%u, %u)", k->file_alloc_start, k->file_alloc_end);
	if (k->iowq_limits_set)
		fprintf(out, ", io-wq limits %u bounded / %u unbounded", k->iowq_limits[0], k->iowq_limits[1]);
	fprintf(out, "\n  SQ: head %u, tail %u (%u unsubmitted), flags 0x%x, dropped %u\n",
		r->sq_head, r->sq_tail, r->sq_tail - r->sq_head, r->sq_flags, r->sq_dropped);
	fprintf(out, "  CQ: head %u, tail %u (%u unreaped), flags 0x%x, overflow %u\n",
		r->cq_head, r->cq_tail, r->cq_tail - r->cq_head, r->cq_flags, r->cq_overflow);
	for (i = 0; i < r->nr_used_bufs; i++)
		bytes += r->bufs[i].len;
	fprintf(out, "  buffers: %u of %u slots, %" PRIu64 " bytes\n", r->nr_used_bufs, r->nr_bufs, bytes);
	for (i = 0; i < r->nr_used_bufs; i++) {
		const struct ucr_buf *b = &r->bufs[i];

		fprintf(out, "    slot %u: 0x%" PRIx64 ", %" PRIu64 " bytes, %u bvecs of up to %u KiB, %s%s%s\n",
			b->slot, b->addr, b->len, b->nr_bvecs, (1U << b->folio_shift) >> 10,
			ucr_backing_name(b->backing), b->backing_path[0] ? " " : "",
			b->backing_path);
	}
	fprintf(out, "  files: %u of %u slots\n", r->nr_used_files, r->nr_files);
	for (i = 0; i < r->nr_used_files; i++)
		fprintf(out, "    slot %u: %s, pos %" PRId64 ", flags 0%o\n", r->files[i].slot,
			r->files[i].path, r->files[i].pos, r->files[i].f_flags);
	fprintf(out, "  personalities: %u (next id %u)\n", r->nr_pers, k->pers_next);
	for (i = 0; i < r->nr_pers; i++)
		fprintf(out, "    id %u: uid %u/%u/%u/%u, gid %u/%u/%u/%u, %d groups, CapEff 0x%llx\n",
			r->pers[i].id, r->pers[i].uid, r->pers[i].euid, r->pers[i].suid,
			r->pers[i].fsuid, r->pers[i].gid, r->pers[i].egid, r->pers[i].sgid,
			r->pers[i].fsgid, r->pers[i].ngroups,
			(unsigned long long)r->pers[i].cap_effective);
}

void ucr_image_show(const struct ucr_image *img, FILE *out, bool json)
{
	unsigned int i;

	if (json) {
		fprintf(out, "{\"version\":%d,\"pid\":%d,\"comm\":", img->version, img->pid);
		json_str(out, img->comm);
		fputs(",\"rings\":[", out);
		for (i = 0; i < img->nr_rings; i++) {
			if (i)
				fputc(',', out);
			ring_json(out, i, &img->rings[i]);
		}
		fputs("]}\n", out);
		return;
	}
	fprintf(out, "image %s: version %d, process %d (%s), %u ring%s\n", img->dir, img->version,
		img->pid, img->comm, img->nr_rings, img->nr_rings == 1 ? "" : "s");
	for (i = 0; i < img->nr_rings; i++)
		ring_text(out, i, &img->rings[i]);
}

void ucr_report_show(const struct ucr_report *rep, FILE *out, bool json)
{
	const struct ucr_stats *s = &rep->stats;
	unsigned int i;

	if (json) {
		fprintf(out, "{\"rings\":%u,\"dumpable\":%s,\"refusals\":[", rep->nr_rings,
			rep->nr_refusals ? "false" : "true");
		for (i = 0; i < rep->nr_refusals; i++) {
			fprintf(out, "%s{\"name\":\"%s\",\"fd\":%d,\"why\":", i ? "," : "",
				rep->refusals[i].name, rep->refusals[i].fd);
			json_str(out, rep->refusals[i].why);
			fputc('}', out);
		}
		fprintf(out, "],\"stats\":{\"freezing_time_us\":%" PRIu64 ",\"frozen_time_us\":%" PRIu64 ",\"drain_time_us\":%" PRIu64 ",\"dump_time_us\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"pages_written\":%" PRIu64 ",\"edeadlk_retries\":%" PRIu64 "}}\n",
			s->freezing_us, s->frozen_us, s->drain_us, s->dump_us, s->bytes_written,
			s->pages_written, s->edeadlk_retries);
		return;
	}
	fprintf(out, "%u ring%s: %s\n", rep->nr_rings, rep->nr_rings == 1 ? "" : "s",
		rep->nr_refusals ? "NOT dumpable" : "dumpable");
	for (i = 0; i < rep->nr_refusals; i++) {
		if (rep->refusals[i].fd >= 0)
			fprintf(out, "  refused %s (ring fd %d): %s\n", rep->refusals[i].name,
				rep->refusals[i].fd, rep->refusals[i].why);
		else
			fprintf(out, "  refused %s: %s\n", rep->refusals[i].name, rep->refusals[i].why);
	}
	fprintf(out, "freezing %.1f ms, frozen %.1f ms (drain %.1f ms), dump %.1f ms, %" PRIu64 " bytes (%" PRIu64 " buffer pages), %" PRIu64 " EDEADLK retries\n",
		s->freezing_us / 1000.0, s->frozen_us / 1000.0, s->drain_us / 1000.0,
		s->dump_us / 1000.0, s->bytes_written, s->pages_written, s->edeadlk_retries);
}
