"""Negative control, self-read: a ring reads its own iterator inline (c/unsafe_self.c).

With ->start() sleeping on ->uring_lock the task already holds that lock
(io_uring_enter) and seq_file->lock, and asks for ->uring_lock again: lockdep
must call it recursive locking, and the task then hangs for good. One boot:
lockdep reports once.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from helpers import Budget, Started
from kmsg import KmsgFollower


@pytest.mark.expect_finding("LOCKDEP", title="possible recursive locking")
def test_self_read_is_recursive_locking(unsafe_order: Callable[[str], Started], kmsg: KmsgFollower,
                                        budget: Budget) -> None:
    started = unsafe_order("self")
    kmsg.wait_for(re.compile(r"^WARNING: possible recursive locking detected"),
                  re.compile(r"unsafe_self/\d+ is trying to acquire lock:"),
                  timeout_s=budget.remaining())
    # the task sleeps on its own lock now; it can neither finish nor be killed
    assert started.proc.poll() is None, "the self-read returned: the lock was not taken twice"
