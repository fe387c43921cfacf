"""Fixtures of the negative control: the helper in its unsafe orders.

These tests only mean something on the negative-control kernel
(kernel-patches/negative/: ->start() sleeps on ->uring_lock instead of
trying it). There each order makes lockdep report and the self-read
deadlocks its task for good, so the harness boots that kernel once per file
here. On the series' kernel the same reads end in -EDEADLK or success and
the expected report never comes: the test fails, as it must.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsg import KmsgFollower


def _in_virtme_guest(cmdline: Path = Path("/proc/cmdline")) -> bool:
    try:
        return any(arg.startswith("virtme_") for arg in cmdline.read_text().split())
    except OSError:
        return False


@pytest.fixture
def unsafe_order(guest_bin: Path) -> Iterator[object]:
    """Starts `uring_lockorder unsafe <order>`; its output goes to the results
    directory when there is one (the self-read never returns, so it is not
    waited for)."""
    if not _in_virtme_guest():
        pytest.skip("not in a virtme-ng guest: the negative control deadlocks its kernel")
    started: list[subprocess.Popen[bytes]] = []
    results = os.environ.get("HARNESS_RESULTS")

    def start(order: str) -> tuple[subprocess.Popen[bytes], Path | None]:
        out = Path(results) / f"negative-{order}.out" if results else None
        sink = open(out, "wb") if out else subprocess.DEVNULL
        try:
            proc = subprocess.Popen([str(guest_bin / "uring_lockorder"), "unsafe", order],
                                    stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if out:
                sink.close()  # type: ignore[union-attr]
        started.append(proc)
        return proc, out

    yield start


@pytest.fixture
def kmsg() -> Iterator[KmsgFollower]:
    follower = KmsgFollower()
    try:
        yield follower
    finally:
        follower.close()
