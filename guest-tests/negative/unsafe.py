"""`uring_lockorder unsafe <order>`: one read in a deadlocking order (c/uring_lockorder.c)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

Started = tuple[subprocess.Popen[bytes], Path | None]
UnsafeOrder = Callable[[str], Started]


def start_unsafe(guest_bin: Path, order: str) -> Started:
    """Starts the helper, not waited for (the self-read never returns); its
    output goes to $HARNESS_RESULTS/negative-<order>.out when there is one."""
    results = os.environ.get("HARNESS_RESULTS")
    out = Path(results) / f"negative-{order}.out" if results else None
    with open(out or os.devnull, "wb") as sink:
        proc = subprocess.Popen([str(guest_bin / "uring_lockorder"), "unsafe", order],
                                stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out
