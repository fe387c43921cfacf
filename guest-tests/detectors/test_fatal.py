"""Oopses and the final panic. One boot: after an oops lockdep and the hung-task
detector are off, and PANIC ends the VM, so it runs last."""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm

WAIT_S = 30.0
CHILD_EXIT_S = 30.0


@pytest.mark.expect_finding("BUG")
def test_bug(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    child = lkdtm.trigger("BUG")
    kmsg.wait_for(
        re.compile(r"^kernel BUG at \S*lkdtm/"),
        re.compile(r"^Oops: invalid opcode: "),
        timeout_s=WAIT_S * timeout_scale,
    )
    # The oops kills the writer; its exit is what lets the next test start clean.
    assert child.wait(CHILD_EXIT_S * timeout_scale) != 0


@pytest.mark.expect_finding("GPF")
def test_general_protection_fault(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # A NULL write; with KASAN the shadow check of address 0 faults first.
    child = lkdtm.trigger("EXCEPTION")
    kmsg.wait_for(
        re.compile(r"^Oops: general protection fault"),
        timeout_s=WAIT_S * timeout_scale,
    )
    assert child.wait(CHILD_EXIT_S * timeout_scale) != 0


@pytest.mark.expect_finding("PANIC")
def test_panic(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # The VM ends here; the test only returns (as a failure) if it does not.
    lkdtm.trigger("PANIC")
    kmsg.wait_for(
        re.compile(r"^Kernel panic - not syncing: dumptest"),
        timeout_s=WAIT_S * timeout_scale,
    )
