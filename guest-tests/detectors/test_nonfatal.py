"""Detectors that leave the kernel usable: WARNING, KASAN, then the hung-task detector.

One boot. The order matters: the hung-task detector goes quiet after an oops, and
its trigger leaves a task in D state for good, so it runs last.
"""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm

WAIT_S = 30.0
# khungtaskd checks every timeout (20 s); a task is reported at the second check
# that finds it blocked, so 20-40 s after blocking plus TCG slowness.
HUNG_TASK_WAIT_S = 60.0
CHILD_EXIT_S = 30.0


@pytest.mark.expect_finding("WARNING")
def test_warning(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    child = lkdtm.trigger("WARNING")
    kmsg.wait_for(
        re.compile(rf"^WARNING: CPU: \d+ PID: {child.pid} at \S*lkdtm"),
        timeout_s=WAIT_S * timeout_scale,
    )
    assert child.wait(CHILD_EXIT_S * timeout_scale) == 0


@pytest.mark.expect_finding("KASAN")
def test_kasan_slab_out_of_bounds(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    child = lkdtm.trigger("SLAB_LINEAR_OVERFLOW")
    kmsg.wait_for(
        re.compile(r"^BUG: KASAN: slab-out-of-bounds in lkdtm_SLAB_LINEAR_OVERFLOW"),
        re.compile(rf"^Write of size \d+ at addr [0-9a-f]+ by task .+/{child.pid}$"),
        timeout_s=WAIT_S * timeout_scale,
    )
    assert child.wait(CHILD_EXIT_S * timeout_scale) == 0


@pytest.mark.expect_finding("HUNG_TASK")
def test_hung_task(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    child = lkdtm.trigger("HUNG_TASK")  # stays in D state for the rest of the boot
    kmsg.wait_for(
        re.compile(rf"^INFO: task .+:{child.pid} blocked for more than \d+ seconds\."),
        timeout_s=HUNG_TASK_WAIT_S * timeout_scale,
    )
