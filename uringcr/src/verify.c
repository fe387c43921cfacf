// SPDX-License-Identifier: GPL-2.0
/*
 * uringcr verify DIR: restore every ring of an image into this process,
 * dump this process, and compare the two images field by field (identity
 * fields aside, ucr_image_diff()). No difference: exit 0.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uringcr.h"
#include "cli.h"

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void report(FILE *out, bool json, const char *dir, const struct ucr_restored *rs,
		   unsigned int nr, const char *diffs, unsigned int nr_diffs)
{
	unsigned int i;

	if (!json) {
		for (i = 0; i < nr; i++)
			fprintf(out, "ring %u: restored in %.1f ms: %" PRIu64 " NOPs, %" PRIu64 " dropped SQ entries, %" PRIu64 " MSG_RING posts in %.1f ms, %" PRIu64 " personality calls, %" PRIu64 " bytes of buffers%s\n",
				i, rs[i].stats.restore_us / 1000.0, rs[i].stats.nops,
				rs[i].stats.drops, rs[i].stats.msgs, rs[i].stats.replay_us / 1000.0,
				rs[i].stats.pers_calls, rs[i].stats.bytes_read,
				rs[i].relocated ? ", mapped elsewhere" : "");
		fputs(diffs, out);
		if (nr_diffs)
			fprintf(out, "verify: %u difference%s between %s and its restore\n", nr_diffs,
				nr_diffs == 1 ? "" : "s", dir);
		else
			fprintf(out, "verify: the restored rings dump equal to %s\n", dir);
		return;
	}
	fputs("{\"image\":", out);
	ucr_json_str(out, dir, strlen(dir));
	fprintf(out, ",\"equal\":%s,\"rings\":[", nr_diffs ? "false" : "true");
	for (i = 0; i < nr; i++)
		fprintf(out, "%s{\"restore_us\":%" PRIu64 ",\"replay_us\":%" PRIu64 ",\"nops\":%" PRIu64 ",\"drops\":%" PRIu64 ",\"msgs\":%" PRIu64 ",\"pers_calls\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"relocated\":%s}",
			i ? "," : "", rs[i].stats.restore_us, rs[i].stats.replay_us,
			rs[i].stats.nops, rs[i].stats.drops, rs[i].stats.msgs,
			rs[i].stats.pers_calls, rs[i].stats.bytes_read,
			rs[i].relocated ? "true" : "false");
	fputs("],\"differences\":[", out);
	for (const char *s = diffs, *e; *s; s = *e ? e + 1 : e) {
		e = strchr(s, '\n');
		if (!e)
			e = s + strlen(s);
		if (s != diffs)
			fputc(',', out);
		ucr_json_str(out, s, e - s);
	}
	fputs("]}\n", out);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "progress", no_argument, NULL, 'P' },
		{ "max-replay", required_argument, NULL, 'm' },
		{}
	};
	struct ucr_restore_opts ro;
	struct ucr_restored *rs = NULL;
	struct ucr_image *img = NULL, *again = NULL;
	struct ucr_report rep;
	struct ucr_err err = {};
	struct ucr_opts o;
	char tmp[] = "/tmp/uringcr-verify.XXXXXX", out_dir[64];
	const char *keep = NULL, *dir;
	unsigned int i, nr = 0, nr_diffs = 0;
	char *diffs = NULL;
	size_t diffs_len = 0;
	bool json = false, made_tmp = false;
	int c, ret = 1;
	FILE *f;

	ucr_restore_opts_default(&ro);
	optind = 2;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'o':
			keep = optarg;
			break;
		case 'P':
			ro.progress = true;
			break;
		case 'm': {
			char *end;

			errno = 0;
			ro.max_replay = strtoull(optarg, &end, 10);
			if (errno || !*optarg || *end) {
				fprintf(stderr, "uringcr verify: --max-replay wants a number, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		}
		default:
			fputs("usage: uringcr verify DIR [--json] [-o DUMP_DIR] [--progress] [--max-replay N]\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs("uringcr verify: which image directory?\n", stderr);
		return EXIT_USAGE;
	}
	dir = argv[optind];
	if (ucr_image_open(dir, &img, &err))
		goto fail;
	nr = ucr_image_nr_rings(img);
	rs = calloc(nr ? nr : 1, sizeof(*rs));
	if (!rs) {
		snprintf(err.msg, sizeof(err.msg), "out of memory");
		goto fail;
	}
	if (ucr_restore_image(img, &ro, rs, &err)) {
		nr = 0;
		goto fail;
	}
	if (!keep) {
		if (!mkdtemp(tmp)) {
			snprintf(err.msg, sizeof(err.msg), "mkdtemp %s: %s", tmp, strerror(errno));
			goto fail;
		}
		made_tmp = true;
		snprintf(out_dir, sizeof(out_dir), "%s/image", tmp);
		keep = out_dir;
	}
	/* this process, its rings as restored: nothing to freeze, nothing in flight */
	ucr_opts_default(&o);
	o.pid = getpid();
	o.freeze = UCR_FREEZE_NONE;
	if (ucr_dump(&o, keep, &rep, &err)) {
		ucr_report_show(&rep, stderr, false);
		goto fail;
	}
	if (ucr_image_open(keep, &again, &err))
		goto fail;
	f = open_memstream(&diffs, &diffs_len);
	if (!f) {
		snprintf(err.msg, sizeof(err.msg), "open_memstream: %s", strerror(errno));
		goto fail;
	}
	for (i = 0; i < nr; i++)
		if (rs[i].relocated)
			break;
	nr_diffs = ucr_image_diff(img, again, i < nr ? UCR_DIFF_ADDRESSES : 0, f);
	fclose(f);
	report(stdout, json, dir, rs, nr, diffs, nr_diffs);
	ret = nr_diffs ? 1 : 0;
	goto out;
fail:
	fprintf(stderr, "uringcr verify: %s\n", err.msg);
out:
	for (i = 0; i < nr; i++)
		ucr_restored_close(&rs[i]);
	free(rs);
	free(diffs);
	if (again)
		ucr_image_close(again);
	if (img)
		ucr_image_close(img);
	if (made_tmp)
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
