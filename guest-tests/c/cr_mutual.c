// SPDX-License-Identifier: GPL-2.0
/*
 * Description: two ring owners that dump each other at the same time with
 * liburingcr (the library a C/R engine links). On "go <pid> <dir>" this
 * process dumps process <pid> into <dir> while that process dumps this one:
 * each freezes the other, so both may end up stopped, and only the
 * guardians (which lift a freeze whose dumper is itself stopped) get them
 * out. Prints "mutual ret=<-errno> took_ms=<ms> msg=<message>", stays until
 * stdin closes (the other may still be dumping it), and passes when the dump
 * finished or failed cleanly and its own ring still works.
 * test_uringcr_safety.py::test_mutual_dumps runs two of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "owner.h"
#include "uringcr.h"

int main(int argc, char *argv[])
{
	struct io_uring_params p;
	struct io_uring ring;
	struct ucr_report rep;
	struct ucr_err err = {};
	struct ucr_opts o;
	char args[512], dir[400];
	long t0;
	int pid, ret;

	t_start("cr_mutual", argc, argv);
	if (ring_init(&ring, &p, 8, 0, 0, 0) || run_nops(&ring, 10, 0))
		return t_fail("ring setup");
	expect_ring("mutual", &ring, &p);
	if (owner_wait_args(args, sizeof(args)))
		return t_fail("no go");
	if (sscanf(args, "%d %399s", &pid, dir) != 2)
		return t_fail("go <pid> <dir> wanted");
	ucr_opts_default(&o);
	o.pid = pid;
	o.lock_ms = (unsigned int)(5000 * t_tscale);
	t0 = now_ms();
	ret = ucr_dump(&o, dir, &rep, &err);
	printf("mutual ret=%d took_ms=%ld msg=%s\n", ret, now_ms() - t0, ret ? err.msg : "");
	fflush(stdout);
	if (ret && !err.msg[0])
		return t_fail("a failed dump without a message");
	/* stay until the test has both results: the other may still dump us */
	while (fgets(args, sizeof(args), stdin))
		;
	return run_nops(&ring, 3, 100) ? t_fail("NOPs after the dumps") : t_pass();
}
