"""Negative control, self-read: a ring reads its own iterator inline.

With ->start() sleeping on ->uring_lock the task already holds that lock
(io_uring_enter) and seq_file->lock, and asks for ->uring_lock again: lockdep
must call it recursive locking, and the task then hangs for good. One boot:
lockdep reports once.
"""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from unsafe import UnsafeOrder

WAIT_S = 60.0


@pytest.mark.expect_finding("LOCKDEP", title="possible recursive locking")
def test_self_read_is_recursive_locking(unsafe_order: UnsafeOrder, kmsg: KmsgFollower,
                                        timeout_scale: float) -> None:
    proc, _ = unsafe_order("self")
    kmsg.wait_for(re.compile(r"^WARNING: possible recursive locking detected"),
                  re.compile(r"uring_lockorder/\d+ is trying to acquire lock:"),
                  timeout_s=WAIT_S * timeout_scale)
    # the task sleeps on its own lock now; it can neither finish nor be killed
    assert proc.poll() is None, "the self-read returned: the lock was not taken twice"
