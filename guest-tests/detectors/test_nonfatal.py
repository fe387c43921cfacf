"""Detectors that leave the kernel usable: WARNING, KASAN, then the hung-task detector.

One boot. The order matters: the hung-task detector goes quiet after an oops, and
its trigger leaves a task in D state for good, so it runs last.
"""

from __future__ import annotations

import re

import pytest

from kmsg import KmsgFollower
from lkdtm import Lkdtm, provoke

# khungtaskd checks every timeout (20 s); a task is reported at the second check
# that finds it blocked, so 20-40 s after blocking plus TCG slowness.
HUNG_TASK_WAIT_S = 60.0


@pytest.mark.expect_finding("WARNING")
def test_warning(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    provoke(lkdtm, kmsg, "WARNING",
            lambda pid: re.compile(rf"^WARNING: CPU: \d+ PID: {pid} at \S*lkdtm"),
            timeout_scale=timeout_scale, child="returns")


@pytest.mark.expect_finding("KASAN")
def test_kasan_slab_out_of_bounds(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    provoke(lkdtm, kmsg, "SLAB_LINEAR_OVERFLOW",
            re.compile(r"^BUG: KASAN: slab-out-of-bounds in lkdtm_SLAB_LINEAR_OVERFLOW"),
            lambda pid: re.compile(rf"^Write of size \d+ at addr [0-9a-f]+ by task .+/{pid}$"),
            timeout_scale=timeout_scale, child="returns")


@pytest.mark.expect_finding("HUNG_TASK")
def test_hung_task(
    lkdtm: Lkdtm, kmsg: KmsgFollower, timeout_scale: float
) -> None:
    # The writer stays in D state for the rest of the boot.
    provoke(lkdtm, kmsg, "HUNG_TASK",
            lambda pid: re.compile(rf"^INFO: task .+:{pid} blocked for more than \d+ seconds\."),
            timeout_scale=timeout_scale, wait_s=HUNG_TASK_WAIT_S)
