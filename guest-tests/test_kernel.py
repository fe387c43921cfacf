"""Checks of the running kernel: the release the host built, io_uring, a BPF iterator."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

EXIT_SKIP = 77  # c/t_helpers.h T_EXIT_SKIP
HELPER_TIMEOUT_S = 60.0
KTAP_RESULT = re.compile(r"^(?P<ok>ok|not ok) (?P<nr>\d+) (?P<name>\S+)(?: # (?P<directive>.*))?$")
CQE_LINE = re.compile(r"^# cqe res=(?P<res>-?\d+) user_data=0x(?P<user_data>[0-9a-f]+)\b")
ITER_COUNTS = re.compile(r"^# bytes=(?P<bytes>\d+) tasks_seen=(?P<tasks_seen>\d+)$")


@dataclass(frozen=True, kw_only=True)
class HelperRun:
    returncode: int
    lines: list[str]
    stderr: str

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        for line in self.lines:
            m = pattern.match(line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern.pattern!r} in {self.lines}")


def run_helper(guest_bin: Path, name: str, *args: str, timeout_scale: float) -> HelperRun:
    """Run a C helper built by the Makefile; skip the test on its SKIP exit code."""
    exe = guest_bin / name
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build with make -C guest-tests OUT={guest_bin}")
    proc = subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        timeout=HELPER_TIMEOUT_S * timeout_scale,
        check=False,
    )
    run = HelperRun(returncode=proc.returncode, lines=proc.stdout.splitlines(), stderr=proc.stderr)
    result = run.match(KTAP_RESULT)
    if proc.returncode == EXIT_SKIP:
        pytest.skip(f"{name}: {result['directive'] or 'skipped'}")
    assert proc.returncode == 0 and result["ok"] == "ok", (
        f"{name} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )
    return run


def test_kernel_release(kernel_release_expected: str | None) -> None:
    if kernel_release_expected is None:
        pytest.skip("HARNESS_KERNEL_RELEASE is not set (not booted by the harness)")
    assert os.uname().release == kernel_release_expected


def test_io_uring_nop_round_trip(guest_bin: Path, timeout_scale: float) -> None:
    user_data = int.from_bytes(os.urandom(8), "little") | 1
    run = run_helper(guest_bin, "uring_nop", hex(user_data), timeout_scale=timeout_scale)
    cqe = run.match(CQE_LINE)
    assert int(cqe["res"]) == 0
    assert int(cqe["user_data"], 16) == user_data


def _proc_tgids(proc: Path) -> set[int]:
    return {int(p.name) for p in proc.iterdir() if p.name.isdigit()}


def _parse_task_lines(text: str) -> list[tuple[int, int, str]]:
    lines = text.splitlines()
    assert lines and lines[0] == "pid tgid comm", f"unexpected header: {lines[:1]}"
    tasks = []
    for line in lines[1:]:
        pid, tgid, comm = line.split(" ", 2)
        tasks.append((int(pid), int(tgid), comm))
    return tasks


def _in_initial_pid_ns() -> bool:
    # The program prints global pids; /proc shows this namespace's.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return len(line.split()) == 2
    return True


def test_bpf_task_iterator(guest_bin: Path, timeout_scale: float, tmp_path: Path) -> None:
    if not _in_initial_pid_ns():
        pytest.skip("not in the initial pid namespace: iterator pids would not match /proc")
    proc = Path("/proc")
    me = os.getpid()
    my_comm = (proc / "self/comm").read_text().rstrip("\n")
    my_threads = {int(t.name) for t in (proc / "self/task").iterdir()}
    before = _proc_tgids(proc)
    out = tmp_path / "tasks.txt"
    run = run_helper(guest_bin, "task_iter", str(out), timeout_scale=timeout_scale)
    after = _proc_tgids(proc)

    tasks = _parse_task_lines(out.read_text())
    counts = run.match(ITER_COUNTS)
    assert int(counts["bytes"]) == out.stat().st_size
    # The program counts every run; a task that did not fit the buffer runs again.
    assert int(counts["tasks_seen"]) >= len(tasks)

    by_pid = {pid: (tgid, comm) for pid, tgid, comm in tasks}
    assert len(by_pid) == len(tasks), "a task was printed twice"
    assert by_pid.get(me) == (me, my_comm), "this test's own process is missing or wrong"
    missing_threads = {t for t in my_threads if by_pid.get(t, (None,))[0] != me}
    assert not missing_threads, f"threads of pid {me} missing: {sorted(missing_threads)}"

    iter_tgids = {tgid for _, tgid, _ in tasks}
    assert set(by_pid) >= iter_tgids, "a tgid without its leader task"
    stable = before & after
    not_iterated = stable - iter_tgids
    assert not not_iterated, f"alive throughout but not iterated: {sorted(not_iterated)}"
    # Short-lived processes may be seen by one view only; the helper itself is one.
    unexplained = iter_tgids - before - after
    assert len(unexplained) <= max(5, len(stable) // 20), (
        f"tgids iterated but never in /proc: {sorted(unexplained)}"
    )
