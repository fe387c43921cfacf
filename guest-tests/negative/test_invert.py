"""Negative control, AB-BA: read(2) of ring A's iterator, then ring B reads it inline
(c/unsafe_invert.c).

read(2) takes seq_file->lock, then A's ->uring_lock; ring B's inline read
takes B's ->uring_lock, then seq_file->lock. With ->start() sleeping on the
lock, lockdep has seen both orders of the two lock classes and must report a
circular dependency. Nothing holds A's lock, so the read itself completes.
One boot: lockdep reports once.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest

from helpers import Budget, Started
from kmsg import KmsgFollower


@pytest.mark.expect_finding("LOCKDEP", title="possible deadlock")
def test_inverted_order_is_circular(unsafe_order: Callable[[str], Started], kmsg: KmsgFollower,
                                    budget: Budget) -> None:
    started = unsafe_order("invert")
    kmsg.wait_for(re.compile(r"^WARNING: possible circular locking dependency detected"),
                  timeout_s=budget.remaining())
    try:
        started.proc.wait(timeout=budget.remaining())
    except subprocess.TimeoutExpired:
        pytest.fail("ring B's read of A's iterator did not complete (nothing holds A's lock)")
    text = started.output.read_text()
    assert started.proc.returncode == 0, text
    assert re.search(r"^unsafe order=invert res=\d+$", text, re.M), text
