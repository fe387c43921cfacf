// SPDX-License-Identifier: GPL-2.0
/*
 * Description: fuzzes uringcr's image reader (ucr_image_open()) with real
 * images: dir=<image> (read-only), work=<scratch dir>, rounds=N, seed=S.
 * Each round copies the image, damages one part (truncates it, flips a
 * byte, or appends garbage) and opens it. Half the rounds then reseal the
 * manifest (new sizes and CRCs), so the checks behind the checksums are
 * reached too. An unsealed damage must always be refused with a message;
 * a resealed one may be refused or read (a changed digit can be a valid
 * value), and a read image is then shown. Prints "fuzz rounds= refused=
 * accepted= sealed_refused=" (refused: not resealed) and the first
 * messages. Each image it reads is also restored (ucr_restore_ring()): a
 * failed restore must leave nothing behind ("fuzz-restore restored=
 * failed="). A crash or a hang fails the test that runs it
 * (test_uringcr_image.py::test_fuzz_images).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ktap.h"
#include "resume.h"
#include "uringcr.h"

#define MAX_FILES	256

static char names[MAX_FILES][256];
static char *data[MAX_FILES];
static size_t sizes[MAX_FILES];
static int nr;

static int load(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d)) && nr < MAX_FILES) {
		struct stat st;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) || !(f = fopen(path, "r")))
			return -1;
		snprintf(names[nr], sizeof(names[nr]), "%s", de->d_name);
		sizes[nr] = st.st_size;
		data[nr] = malloc(st.st_size + 1);
		if (!data[nr] || fread(data[nr], 1, st.st_size, f) != (size_t)st.st_size)
			return -1;
		fclose(f);
		nr++;
	}
	closedir(d);
	return nr ? 0 : -1;
}

static int put(const char *dir, int i, const char *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
	f = fopen(path, "w");
	if (!f || (len && fwrite(buf, 1, len, f) != len))
		return -1;
	return fclose(f);
}

/*
 * An image the reader took is restored into this process too: a restore
 * that fails (a damaged value the kernel refuses, an address an earlier
 * round's buffers took) must leave no fd and no mapping behind. A replay
 * longer than 2^20 operations is refused up front (a damaged counter).
 */
static int try_restore(struct ucr_image *img, long *restored, long *failed)
{
	struct ucr_restore_opts o;
	struct ucr_restored r;
	struct ucr_err err;
	int fds = count_fds(), maps = count_maps();

	if (!ucr_image_nr_rings(img))
		return 0;
	ucr_restore_opts_default(&o);
	o.max_replay = 1 << 20;
	if (!ucr_restore_ring(img, 0, &o, &r, &err)) {
		/* the buffers' memory stays: it is the application's */
		ucr_restored_close(&r);
		++*restored;
		return 0;
	}
	if (*failed < 3)
		t_diag("restore refused: %s", err.msg);
	++*failed;
	if (count_fds() == fds && count_maps() == maps)
		return 0;
	t_diag("after: %s: fds %d -> %d, mappings %d -> %d", err.msg, fds, count_fds(), maps,
	       count_maps());
	return -1;
}

int main(int argc, char *argv[])
{
	const char *dir = NULL, *work = NULL;
	long rounds = 1000, seed = 1, r;
	long refused = 0, accepted = 0, sealed_refused = 0, shown = 0;
	long restored = 0, restore_failed = 0;
	int i;

	t_start("cr_fuzz", argc, argv);
	for (i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "dir=", 4))
			dir = argv[i] + 4;
		else if (!strncmp(argv[i], "work=", 5))
			work = argv[i] + 5;
	}
	rounds = t_arg_long(argc, argv, "rounds", rounds);
	seed = t_arg_long(argc, argv, "seed", seed);
	if (!dir || !work || load(dir))
		return t_fail("dir=<image> work=<dir> wanted, and a readable image");
	srandom(seed);
	if (mkdir(work, 0700))
		return t_fail("mkdir work");
	for (i = 0; i < nr; i++)
		if (put(work, i, data[i], sizes[i]))
			return t_fail("copying the image");
	{
		struct ucr_image *img;
		struct ucr_err err;

		if (ucr_image_open(work, &img, &err)) {
			t_diag("the undamaged copy: %s", err.msg);
			return t_fail("the undamaged image does not open");
		}
		ucr_image_close(img);
	}
	for (r = 0; r < rounds; r++) {
		int victim = random() % nr, how = random() % 3;
		bool seal = random() % 2;
		size_t len = sizes[victim];
		char *buf = malloc(len + 17);
		struct ucr_image *img;
		struct ucr_err err;
		int ret;

		memcpy(buf, data[victim], len);
		if (how == 0 || !len) {		/* truncate */
			len = len ? random() % len : 0;
		} else if (how == 1) {		/* flip one byte */
			buf[random() % len] ^= 1 << (random() % 8);
		} else {			/* append garbage */
			for (int j = 0; j < 16; j++)
				buf[len++] = random();
		}
		if (put(work, victim, buf, len))
			return t_fail("writing a damaged part");
		/* the manifest is not resealed against itself */
		seal = seal && strcmp(names[victim], "manifest");
		if (seal && ucr_image_reseal(work, &err))
			return t_fail("reseal");
		ret = ucr_image_open(work, &img, &err);
		if (ret) {
			if (!err.msg[0])
				return t_fail("a refusal without a message");
			if (refused + sealed_refused < 5)
				t_diag("refused (%s): %s", seal ? "resealed" : "sealed", err.msg);
			if (seal)
				sealed_refused++;
			else
				refused++;
		} else {
			if (!seal) {
				t_diag("round %ld: %s damaged (%d, %s) and accepted", r, names[victim],
				       how, seal ? "resealed" : "not resealed");
				return t_fail("a damaged image was accepted");
			}
			if (shown++ < 3) {
				FILE *null = fopen("/dev/null", "w");

				ucr_image_show(img, null, true);
				fclose(null);
			}
			accepted++;
			if (try_restore(img, &restored, &restore_failed))
				return t_fail("a failed restore left something behind");
			ucr_image_close(img);
		}
		/* undo: every part as it was */
		if (put(work, victim, data[victim], sizes[victim]))
			return t_fail("restoring a part");
		for (i = 0; seal && i < nr; i++)
			if (!strcmp(names[i], "manifest") && put(work, i, data[i], sizes[i]))
				return t_fail("restoring the manifest");
		free(buf);
	}
	printf("fuzz rounds=%ld refused=%ld accepted=%ld sealed_refused=%ld\n", rounds, refused,
	       accepted, sealed_refused);
	printf("fuzz-restore restored=%ld failed=%ld\n", restored, restore_failed);
	return t_pass();
}
