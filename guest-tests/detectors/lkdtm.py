"""LKDTM (drivers/misc/lkdtm): provoke one kernel report by writing its name to DIRECT."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from kmsg import KmsgFollower

DEBUGFS = Path("/sys/kernel/debug")
DIRECT = DEBUGFS / "provoke-crash" / "DIRECT"
# How long a report and then the writer's exit may take, before timeout_scale.
REPORT_WAIT_S = 30.0
CHILD_EXIT_S = 30.0

# A report line, or a function of the writer's pid giving one (for lines that name it).
Report = re.Pattern[str] | Callable[[int], re.Pattern[str]]
# What the writer does after the report: returns (0), dies of the oops, or is
# left alone (it never returns, or the VM ends).
ChildEnd = Literal["returns", "killed", "left"]

# Runs in the child: optionally pin to one CPU, then write the crash type.
_TRIGGER = """
import os, sys
direct, crashtype, cpu = sys.argv[1], sys.argv[2], sys.argv[3]
if cpu:
    os.sched_setaffinity(0, {int(cpu)})
fd = os.open(direct, os.O_WRONLY)
os.write(fd, crashtype.encode())
"""


def mount_debugfs(debugfs: Path = DEBUGFS) -> None:
    if not debugfs.is_mount():
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(debugfs)], check=True)


@dataclass(frozen=True, kw_only=True)
class Lkdtm:
    direct: Path = DIRECT

    def trigger(self, crashtype: str, *, cpu: int | None = None,
                writer: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a child that writes crashtype to DIRECT, pinned to cpu if given;
        `writer` is a program run as `writer DIRECT CRASHTYPE` instead of Python
        (c/lkdtm_atomic_return for crash types that return in atomic context).

        Not waited for here: an oops kills the child, and some crash types
        (HUNG_TASK, SOFTLOCKUP) never return.
        """
        if writer is not None:
            if cpu is not None:
                raise ValueError("a writer program is not pinned")
            return subprocess.Popen([str(writer), str(self.direct), crashtype],
                                    stdin=subprocess.DEVNULL)
        argv = [sys.executable, "-c", _TRIGGER, str(self.direct), crashtype]
        argv.append("" if cpu is None else str(cpu))
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def provoke(lkdtm: Lkdtm, kmsg: KmsgFollower, crashtype: str, *reports: Report,
            timeout_scale: float, wait_s: float = REPORT_WAIT_S,
            child: ChildEnd = "left", writer: Path | None = None) -> None:
    """Trigger crashtype, wait until the kernel log shows every report, check the writer's end.

    Fails the test when a report does not come within wait_s (scaled), so a
    silent detector fails in the guest as well as on the host.
    """
    proc = lkdtm.trigger(crashtype, writer=writer)
    kmsg.wait_for(*(r if isinstance(r, re.Pattern) else r(proc.pid) for r in reports),
                  timeout_s=wait_s * timeout_scale)
    if child == "left":
        return
    # The writer's exit is also what lets the next test start clean.
    status = proc.wait(CHILD_EXIT_S * timeout_scale)
    if (status == 0) != (child == "returns"):
        pytest.fail(f"the {crashtype} writer exited with {status}, expected it to "
                    f"{'return 0' if child == 'returns' else 'be killed by the oops'}",
                    pytrace=False)
