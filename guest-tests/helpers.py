"""Running the guest programs (c/, built into HARNESS_GUEST_BIN) and other commands.

One runner for every test, with one exit convention (README.md, "The guest
programs"): a program prints KTAP with one result line and exits 0 (pass),
1 (fail) or 77 (skip, liburing's T_EXIT_SKIP); the result line and the exit
status must agree.

Every run is bounded by the test's time budget (fixture `budget`), also when
the program deadlocks in the kernel: a process in D state can be neither
killed nor waited for, and subprocess.run(timeout=) would block on it after
the kill. run_bounded() gives up instead, keeps whatever the process printed
(its output goes to a file, not a pipe, so nothing depends on the process
closing it) and says so. The test then fails with that output, the per-test
watchdog never has to fire, and the kernel's hung-task report lands in the
console log for the host's scan.

Each program's output is appended to $HARNESS_RESULTS/helpers/<label>.txt
(fixture `results_dir`), so reproduce mode keeps every round's; the recorded
fixtures of selftests/ come from there.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import pytest

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77  # lib/ktap.h T_EXIT_SKIP
# After SIGKILL, how long a process may take to go away before it counts as stuck;
# taken out of the deadline, so that run_bounded() returns within it.
KILL_GRACE_S = 10.0
# A program's result line: the KTAP result of its one test.
KTAP_RESULT = re.compile(r"^(?P<ok>ok|not ok) 1 (?P<name>\S+)(?: # (?P<directive>.*))?$")
_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9_.=+-]")


class Budget(Protocol):
    """What is left of the test's watchdog budget (guest_runner.Budget)."""

    @property
    def seconds(self) -> float: ...

    def remaining(self) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int | None  # None: still there after SIGKILL (stuck in the kernel)
    timed_out: bool
    output: str  # stdout and stderr, interleaved as written
    seconds: float
    saved: Path | None = None  # where the whole output was kept

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    @property
    def result(self) -> re.Match[str] | None:
        """The last KTAP result line, if any."""
        found = None
        for line in self.lines:
            m = KTAP_RESULT.match(line)
            if m:
                found = m
        return found

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """The first line matching @pattern; fails the test with the output if none does."""
        for line in self.lines:
            m = pattern.match(line)
            if m:
                return m
        pytest.fail(f"no line matching {pattern.pattern!r}\n{self.describe()}", pytrace=False)

    def how(self) -> str:
        if self.timed_out and self.returncode is None:
            return (f"did not finish within {self.seconds:.0f} s and did not die on SIGKILL "
                    f"(stuck in the kernel: a hang)")
        if self.timed_out:
            return f"did not finish within {self.seconds:.0f} s (killed)"
        if self.returncode is not None and self.returncode < 0:
            return f"died of signal {-self.returncode} after {self.seconds:.1f} s"
        return f"exited {self.returncode} after {self.seconds:.1f} s"

    def describe(self, tail: int = 60) -> str:
        """What happened, for a failure message: how it ended and the last lines."""
        name = Path(self.argv[0]).name
        args = " ".join(self.argv[1:])
        lines = self.lines
        shown = lines[-tail:]
        cut = f"[{len(lines) - len(shown)} earlier lines not shown]\n" if len(shown) < len(lines) else ""
        kept = f" (all of it in {self.saved})" if self.saved else ""
        return f"{name} {args}: {self.how()}; output{kept}:\n{cut}" + "\n".join(shown)


def run_bounded(argv: Sequence[str | Path], *, timeout: float, cwd: Path | None = None) -> Finished:
    """Runs @argv and returns within @timeout seconds, whatever the process does."""
    args = tuple(str(a) for a in argv)
    grace = min(KILL_GRACE_S, timeout / 4)
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd)
        timed_out = False
        returncode: int | None
        try:
            returncode = proc.wait(max(timeout - grace, 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            try:
                returncode = proc.wait(grace)
            except subprocess.TimeoutExpired:
                returncode = None
        seconds = time.monotonic() - start
        out.seek(0)
        output = out.read().decode(errors="replace")
    return Finished(argv=args, returncode=returncode, timed_out=timed_out, output=output,
                    seconds=seconds)


def judge(finished: Finished) -> Finished:
    """The exit convention: returns @finished when the program passed, skips the
    test with the program's reason on its SKIP, fails it with the output otherwise."""
    result = finished.result
    name = Path(finished.argv[0]).name
    directive = (result["directive"] or "") if result else ""
    ktap_skip = result is not None and result["ok"] == "ok" and directive.startswith("SKIP")
    if finished.returncode == EXIT_SKIP and ktap_skip:
        reason = directive[len("SKIP"):].strip() or "no reason given"
        args = [a for a in finished.argv[1:] if not a.startswith("tscale=")]
        pytest.skip(f"{' '.join([name, *args])}: {reason}")
    passed = result is not None and result["ok"] == "ok" and not ktap_skip
    if finished.returncode == EXIT_PASS and passed:
        return finished
    if finished.returncode in (EXIT_PASS, EXIT_SKIP):
        why = ("no KTAP result line" if result is None else
               f"its result line {result.group(0)!r} disagrees with the exit status")
        pytest.fail(f"{why}\n{finished.describe()}", pytrace=False)
    pytest.fail(finished.describe(), pytrace=False)


@dataclass(frozen=True, kw_only=True)
class Started:
    """A program left running (the negative control's may never return)."""

    proc: subprocess.Popen[bytes]
    output: Path
    offset: int = 0  # where this run's output starts in @output (kept runs append)

    def text(self) -> str:
        """What the program has printed so far."""
        with self.output.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


class Helpers:
    """The runner of one test: fixture `helpers` (conftest.py)."""

    def __init__(self, *, guest_bin: Path, budget: Budget, timeout_scale: float,
                 results_dir: Path | None, tmp_path: Path) -> None:
        self.guest_bin = guest_bin
        self.budget = budget
        self.timeout_scale = timeout_scale
        self.results_dir = results_dir
        self.tmp_path = tmp_path

    def program(self, name: str) -> Path:
        exe = self.guest_bin / name
        if not exe.is_file():
            pytest.fail(f"{exe} is missing: build with make -C guest-tests OUT={self.guest_bin}",
                        pytrace=False)
        return exe

    def argv(self, name: str, args: Sequence[str]) -> list[str]:
        """Every program takes tscale=F, the scale of its waits on the kernel."""
        return [str(self.program(name)), *args, f"tscale={self.timeout_scale:g}"]

    def run(self, name: str, *args: str, label: str | None = None) -> Finished:
        """Runs program @name within the test's budget and judges its exit (judge())."""
        finished = self.command(self.argv(name, args),
                                label=label or "-".join([name, *(a for a in args if "=" not in a)]))
        return judge(finished)

    def command(self, argv: Sequence[str | Path], *, label: str | None = None,
                cwd: Path | None = None) -> Finished:
        """Any command, bounded by the test's budget, not judged; its output kept
        under @label when given."""
        finished = run_bounded(argv, timeout=self.budget.remaining(), cwd=cwd)
        if label is None:
            return finished
        saved = self._keep(label, finished)
        return Finished(argv=finished.argv, returncode=finished.returncode,
                        timed_out=finished.timed_out, output=finished.output,
                        seconds=finished.seconds, saved=saved)

    def start(self, name: str, *args: str, stdin: bool = False,
              label: str | None = None) -> Started:
        """Starts program @name, not waited for; its output goes to a file kept
        with the results (or under the test's tmp_path), named by @label (by
        default the name and its plain arguments: two programs running at once
        need labels of their own). With @stdin, its stdin is a pipe (proc.stdin)
        instead of /dev/null."""
        argv = self.argv(name, args)
        label = label or "-".join([name, *(a for a in args if "=" not in a)])
        out = self._output_path(label) or self.tmp_path / f"{_UNSAFE_LABEL.sub('_', label)}.txt"
        offset = out.stat().st_size if out.exists() else 0
        with out.open("ab") as sink:
            sink.write(f"# {' '.join(argv)}\n".encode())
            sink.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return Started(proc=proc, output=out, offset=offset)

    def _output_path(self, label: str) -> Path | None:
        if self.results_dir is None:
            return None
        try:
            keep = self.results_dir / "helpers"
            keep.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return keep / f"{_UNSAFE_LABEL.sub('_', label)[:120]}.txt"

    def _keep(self, label: str, finished: Finished) -> Path | None:
        path = self._output_path(label)
        if path is None:
            return None
        try:
            with path.open("a") as f:
                _write_run(f, finished)
        except OSError:
            return None
        return path


def _write_run(f: IO[str], finished: Finished) -> None:
    # appended: in reproduce mode every round's output is kept
    f.write(f"# {' '.join(finished.argv)} ({finished.how()})\n")
    f.write(finished.output)
    if finished.output and not finished.output.endswith("\n"):
        f.write("\n")
