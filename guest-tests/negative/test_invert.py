"""Negative control, AB-BA: read(2) of ring A's iterator, then ring B reads it inline.

read(2) takes seq_file->lock, then A's ->uring_lock; ring B's inline read
takes B's ->uring_lock, then seq_file->lock. With ->start() sleeping on the
lock, lockdep has seen both orders of the two lock classes and must report a
circular dependency. Nothing holds A's lock, so the read itself completes.
One boot: lockdep reports once.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from kmsg import KmsgFollower
from unsafe import UnsafeOrder

WAIT_S = 60.0


@pytest.mark.expect_finding("LOCKDEP", title="possible deadlock")
def test_inverted_order_is_circular(unsafe_order: UnsafeOrder, kmsg: KmsgFollower,
                                    timeout_scale: float) -> None:
    proc, out = unsafe_order("invert")
    kmsg.wait_for(re.compile(r"^WARNING: possible circular locking dependency detected"),
                  timeout_s=WAIT_S * timeout_scale)
    try:
        proc.wait(timeout=WAIT_S * timeout_scale)
    except subprocess.TimeoutExpired:
        pytest.fail("ring B's read of A's iterator did not complete (nothing holds A's lock)")
    text = out.read_text() if out else ""
    assert proc.returncode == 0, text
    assert re.search(r"^unsafe order=invert res=\d+$", text, re.M), text
