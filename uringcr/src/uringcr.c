// SPDX-License-Identifier: GPL-2.0
/*
 * uringcr: checkpoint io_uring instances of another process (README.md).
 *
 *   uringcr dump  --pid P [--fd N] -o DIR [options]
 *   uringcr check --pid P [--fd N] [--json] [options]
 *   uringcr show  DIR [--json]
 *   uringcr verify DIR [--json] [-o DUMP_DIR]
 *
 * Exit status: 0 done, 1 failed (the message says why), 2 usage,
 * 3 refused (something the image cannot carry; the report names it).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uringcr.h"
#include "cli.h"

static void usage(FILE *out)
{
	fputs("usage: uringcr dump  --pid PID [--fd FD] -o DIR [OPTIONS]\n"
	      "       uringcr check --pid PID [--fd FD] [--json] [OPTIONS]\n"
	      "       uringcr show  DIR [--json]\n"
	      "       uringcr verify DIR [--json] [-o DUMP_DIR] [--progress] [--max-replay N]\n"
	      "\n"
	      "Checkpoints the io_uring instances of a process through the io_uring BPF\n"
	      "iterators: dump writes an image directory, check says what a dump would\n"
	      "carry and refuse without writing anything, show prints an image, verify\n"
	      "restores an image into itself, dumps that and prints the differences.\n"
	      "\n"
	      "  --pid PID             the process (ptrace attach rights needed)\n"
	      "  --fd FD               only the ring at this fd (default: every ring)\n"
	      "  -o, --output DIR      the image directory to create (must not exist)\n"
	      "  --freeze MODE         sigstop (default), cgroup (the cgroup v2 freezer),\n"
	      "                        or none (the caller froze the process)\n"
	      "  --drain-timeout MS    wait for in-flight requests this long (2000)\n"
	      "  --lock-timeout MS     retry a busy uring_lock (EDEADLK) or table (EBUSY)\n"
	      "                        this long (5000)\n"
	      "  --json                machine-readable output\n"
	      "  --progress            progress on stderr (default on a terminal)\n"
	      "  --hold-frozen MS      testing: stay frozen this long before reading\n"
	      "  --max-replay N        verify: refuse a counter replay of more operations\n"
	      "\n"
	      "\n"
	      "Exit status: 0 done, 1 failed (verify: differences), 2 usage, 3 refused.\n", out);
}

static int number(const char *opt, const char *s, long lo, long hi, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || !*s || *end || *v < lo || *v > hi) {
		fprintf(stderr, "uringcr: %s wants a number from %ld to %ld, not '%s'\n", opt, lo, hi, s);
		return -1;
	}
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	struct ucr_image *img;
	struct ucr_err err = {};
	bool json = false;
	const char *dir = NULL;
	int i;

	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || dir) {
			usage(stderr);
			return EXIT_USAGE;
		} else
			dir = argv[i];
	}
	if (!dir) {
		fputs("uringcr show: which image directory?\n", stderr);
		return EXIT_USAGE;
	}
	if (ucr_image_open(dir, &img, &err)) {
		fprintf(stderr, "uringcr: %s\n", err.msg);
		return 1;
	}
	ucr_image_show(img, stdout, json);
	ucr_image_close(img);
	return 0;
}

static int cmd_dump(int argc, char **argv, bool dump)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "fd", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "freeze", required_argument, NULL, 'F' },
		{ "drain-timeout", required_argument, NULL, 'd' },
		{ "lock-timeout", required_argument, NULL, 'l' },
		{ "hold-frozen", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "progress", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct ucr_report rep;
	struct ucr_err err = {};
	struct ucr_opts o;
	const char *dir = NULL;
	bool json = false;
	long v;
	int c, ret;

	ucr_opts_default(&o);
	o.pid = 0;
	o.progress = isatty(2);
	optind = 2;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (number("--pid", optarg, 1, 0x7fffffff, &v))
				return EXIT_USAGE;
			o.pid = v;
			break;
		case 'f':
			if (number("--fd", optarg, 0, 0x7fffffff, &v))
				return EXIT_USAGE;
			o.fd = v;
			break;
		case 'o':
			dir = optarg;
			break;
		case 'F':
			if (!strcmp(optarg, "sigstop"))
				o.freeze = UCR_FREEZE_SIGSTOP;
			else if (!strcmp(optarg, "cgroup"))
				o.freeze = UCR_FREEZE_CGROUP;
			else if (!strcmp(optarg, "none"))
				o.freeze = UCR_FREEZE_NONE;
			else {
				fprintf(stderr, "uringcr: --freeze is sigstop, cgroup or none, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			if (number("--drain-timeout", optarg, 0, 3600000, &v))
				return EXIT_USAGE;
			o.drain_ms = v;
			break;
		case 'l':
			if (number("--lock-timeout", optarg, 0, 3600000, &v))
				return EXIT_USAGE;
			o.lock_ms = v;
			break;
		case 'H':
			if (number("--hold-frozen", optarg, 0, 3600000, &v))
				return EXIT_USAGE;
			o.hold_ms = v;
			break;
		case 'j':
			json = true;
			break;
		case 'P':
			o.progress = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !o.pid || (dump && !dir) || (!dump && dir)) {
		fprintf(stderr, "uringcr %s: %s\n", argv[1],
			optind < argc ? "unexpected arguments" :
			!o.pid ? "--pid is required" :
			dump ? "-o DIR is required" : "check writes nothing: no -o");
		return EXIT_USAGE;
	}
	ret = dump ? ucr_dump(&o, dir, &rep, &err) : ucr_check(&o, &rep, &err);
	if (ret && ret != -EOPNOTSUPP) {
		/* the figures of a dump that got as far as the rings (retries, times) */
		if (rep.nr_rings)
			ucr_report_show(&rep, stdout, json);
		fprintf(stderr, "uringcr: %s\n", err.msg);
		return 1;
	}
	ucr_report_show(&rep, stdout, json);
	if (ret) {
		fprintf(stderr, "uringcr: %s\n", err.msg);
		return EXIT_REFUSED;
	}
	if (!dump && rep.nr_refusals)
		return EXIT_REFUSED;
	if (dump && !json)
		printf("image written to %s\n", dir);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "dump"))
		return cmd_dump(argc, argv, true);
	if (!strcmp(argv[1], "check"))
		return cmd_dump(argc, argv, false);
	if (!strcmp(argv[1], "show"))
		return cmd_show(argc, argv);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("uringcr 0.1 (image version %d)\n", UCR_IMAGE_VERSION);
		return 0;
	}
	fprintf(stderr, "uringcr: no command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
