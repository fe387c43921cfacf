"""LKDTM (drivers/misc/lkdtm): provoke one kernel report by writing its name to DIRECT."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEBUGFS = Path("/sys/kernel/debug")
DIRECT = DEBUGFS / "provoke-crash" / "DIRECT"

# Runs in the child: optionally pin to one CPU, then write the crash type.
_TRIGGER = """
import os, sys
direct, crashtype, cpu = sys.argv[1], sys.argv[2], sys.argv[3]
if cpu:
    os.sched_setaffinity(0, {int(cpu)})
fd = os.open(direct, os.O_WRONLY)
os.write(fd, crashtype.encode())
"""


def in_virtme_guest(cmdline: Path = Path("/proc/cmdline")) -> bool:
    """virtme-ng passes virtme_* parameters on the kernel command line."""
    try:
        return any(arg.startswith("virtme_") for arg in cmdline.read_text().split())
    except OSError:
        return False


def mount_debugfs(debugfs: Path = DEBUGFS) -> None:
    if not debugfs.is_mount():
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(debugfs)], check=True)


@dataclass(frozen=True, kw_only=True)
class Lkdtm:
    direct: Path = DIRECT

    def trigger(self, crashtype: str, *, cpu: int | None = None) -> subprocess.Popen[bytes]:
        """Start a child that writes crashtype to DIRECT, pinned to cpu if given.

        Not waited for here: an oops kills the child, and some crash types
        (HUNG_TASK, SOFTLOCKUP) never return.
        """
        argv = [sys.executable, "-c", _TRIGGER, str(self.direct), crashtype]
        argv.append("" if cpu is None else str(cpu))
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL)
