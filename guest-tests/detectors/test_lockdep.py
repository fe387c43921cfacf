"""Lockdep: a spinlock still held on return to user space. One boot: lockdep reports once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm, provoke


@pytest.mark.expect_finding("LOCKDEP")
def test_lock_held_returning_to_user(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float, guest_bin: Path
) -> None:
    # The first SPINLOCKUP write takes the lock and returns with it held; the
    # child may then also hit "BUG: scheduling while atomic". Lockdep reports
    # once, and when the return to user space runs task work first, that
    # report is the invalid wait context of its might_sleep() (seen once in
    # about ten boots): either is lockdep firing. The writer is a C program
    # that schedules at once (c/lkdtm_atomic_return.c says why) and returns 0:
    # its end is inside this test's window too.
    provoke(lkdtm, kmsg, "SPINLOCKUP",
            re.compile(r"^(WARNING: lock held when returning to user space!"
                       r"|\[ BUG: Invalid wait context \])$"),
            timeout_scale=timeout_scale, child="returns",
            writer=guest_bin / "lkdtm_atomic_return")
