"""Fixtures of the detector self-test: an LKDTM trigger (the /dev/kmsg follower
`kmsg` is the root conftest's).

Each test provokes one kernel report through LKDTM and waits until the kernel has
printed it, so a detector that stays silent fails the test in the guest as well
as on the host. The `lkdtm` fixture refuses to run outside a virtme-ng guest:
these tests crash the kernel they run on.
"""

from __future__ import annotations

import os

import pytest

from guest_runner import in_virtme_guest
from lkdtm import Lkdtm, mount_debugfs


@pytest.fixture
def lkdtm(kernel_release_expected: str | None) -> Lkdtm:
    if not in_virtme_guest():
        pytest.skip("not in a virtme-ng guest: LKDTM would crash this machine")
    release = os.uname().release
    if kernel_release_expected and release != kernel_release_expected:
        pytest.skip(f"running {release}, not the kernel under test {kernel_release_expected}")
    mount_debugfs()
    lkdtm = Lkdtm()
    if not lkdtm.direct.exists():
        pytest.fail(f"{lkdtm.direct} is missing: is CONFIG_LKDTM=y?")
    return lkdtm
