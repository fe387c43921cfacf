"""Oopses and the final panic. One boot: after an oops lockdep and the hung-task
detector are off, and PANIC ends the VM, so it runs last."""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm, provoke


@pytest.mark.expect_finding("BUG")
def test_bug(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    provoke(lkdtm, kmsg, "BUG",
            re.compile(r"^kernel BUG at \S*lkdtm/"),
            re.compile(r"^Oops: invalid opcode: "),
            timeout_scale=timeout_scale, child="killed")


@pytest.mark.expect_finding("GPF")
def test_general_protection_fault(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # A NULL write; with KASAN the shadow check of address 0 faults first.
    provoke(lkdtm, kmsg, "EXCEPTION",
            re.compile(r"^Oops: general protection fault"),
            timeout_scale=timeout_scale, child="killed")


@pytest.mark.expect_finding("PANIC")
def test_panic(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # The VM ends here; the test only returns (as a failure) if it does not.
    provoke(lkdtm, kmsg, "PANIC",
            re.compile(r"^Kernel panic - not syncing: dumptest"),
            timeout_scale=timeout_scale)
