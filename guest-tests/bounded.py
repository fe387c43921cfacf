"""Run a helper program with a deadline, without trusting it to ever exit.

A process that deadlocks in the kernel (an uninterruptible mutex_lock(), say)
cannot be killed and cannot be waited for. subprocess.run(timeout=) would
block on it after the kill; run_bounded() gives up instead, keeps whatever
the process had printed (its output goes to a file, not a pipe, so nothing
depends on the process closing it) and says so. The test then fails with
that output, the per-test watchdog never has to fire, and the kernel's hung
task report lands in the console log for the host's scan.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# After SIGKILL, how long a process may take to go away before it counts as stuck.
KILL_GRACE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int | None  # None: still there after SIGKILL (stuck in the kernel)
    timed_out: bool
    output: str  # stdout and stderr, interleaved as written
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def describe(self, tail: int = 60) -> str:
        """What happened, for a failure message: how it ended and the last lines."""
        name = Path(self.argv[0]).name
        args = " ".join(self.argv[1:])
        if self.timed_out and self.returncode is None:
            how = (f"did not finish within {self.seconds:.0f} s and did not die on SIGKILL "
                   f"(stuck in the kernel: a hang)")
        elif self.timed_out:
            how = f"did not finish within {self.seconds:.0f} s (killed)"
        elif self.returncode is not None and self.returncode < 0:
            how = f"died of signal {-self.returncode} after {self.seconds:.1f} s"
        else:
            how = f"exited {self.returncode} after {self.seconds:.1f} s"
        lines = self.lines
        shown = lines[-tail:]
        cut = f"[{len(lines) - len(shown)} earlier lines not shown]\n" if len(shown) < len(lines) else ""
        return f"{name} {args}: {how}; output:\n{cut}" + "\n".join(shown)


def run_bounded(argv: Sequence[str | Path], *, timeout: float, cwd: Path | None = None) -> Finished:
    args = tuple(str(a) for a in argv)
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd)
        timed_out = False
        returncode: int | None
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            try:
                returncode = proc.wait(KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                returncode = None
        seconds = time.monotonic() - start
        out.seek(0)
        output = out.read().decode(errors="replace")
    return Finished(argv=args, returncode=returncode, timed_out=timed_out, output=output,
                    seconds=seconds)
