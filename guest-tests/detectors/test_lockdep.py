"""Lockdep: a spinlock still held on return to user space. One boot: lockdep reports once."""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm, provoke


@pytest.mark.expect_finding("LOCKDEP")
def test_lock_held_returning_to_user(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # The first SPINLOCKUP write takes the lock and returns with it held; the
    # child may then also hit "BUG: scheduling while atomic".
    provoke(lkdtm, kmsg, "SPINLOCKUP",
            re.compile(r"^WARNING: lock held when returning to user space!$"),
            lambda pid: re.compile(rf"/{pid} is leaving the kernel with locks still held!$"),
            timeout_scale=timeout_scale)
