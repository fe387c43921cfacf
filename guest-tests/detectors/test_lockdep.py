"""Lockdep: a spinlock still held on return to user space. One boot: lockdep reports once."""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm

WAIT_S = 30.0


@pytest.mark.expect_finding("LOCKDEP")
def test_lock_held_returning_to_user(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # The first SPINLOCKUP write takes the lock and returns with it held; the
    # child may then also hit "BUG: scheduling while atomic".
    child = lkdtm.trigger("SPINLOCKUP")
    kmsg.wait_for(
        re.compile(r"^WARNING: lock held when returning to user space!$"),
        re.compile(rf"/{child.pid} is leaving the kernel with locks still held!$"),
        timeout_s=WAIT_S * timeout_scale,
    )
