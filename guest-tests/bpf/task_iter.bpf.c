// SPDX-License-Identifier: GPL-2.0
/* iter/task: one line "pid tgid comm" per task, after a header line. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

/* Read by userspace through the skeleton (skel->bss). */
__u64 tasks_seen;

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	__u64 seq_num = ctx->meta->seq_num;

	if (!task)
		return 0;

	if (seq_num == 0)
		BPF_SEQ_PRINTF(seq, "pid tgid comm\n");

	BPF_SEQ_PRINTF(seq, "%d %d %s\n", task->pid, task->tgid, task->comm);
	__sync_fetch_and_add(&tasks_seen, 1);
	return 0;
}
