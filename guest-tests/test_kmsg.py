"""The /dev/kmsg follower the detector tests rely on, checked with a line of our own."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsg import KmsgFollower

KMSG = Path("/dev/kmsg")


@pytest.fixture
def follower() -> Iterator[KmsgFollower]:
    if not (os.access(KMSG, os.R_OK) and os.access(KMSG, os.W_OK)):
        pytest.skip("/dev/kmsg is not readable and writable here")
    f = KmsgFollower(KMSG)
    yield f
    f.close()


def _log(text: str) -> None:
    fd = os.open(KMSG, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, f"<6>kmsg-selftest: {text}\n".encode())
    finally:
        os.close(fd)


def test_sees_only_new_lines_in_any_order(follower: KmsgFollower) -> None:
    token = os.urandom(6).hex()
    _log(f"{token} second")
    _log(f"{token} first")
    found = follower.wait_for(
        re.compile(rf"kmsg-selftest: {token} first$"),
        re.compile(rf"kmsg-selftest: {token} second$"),
        timeout_s=10,
    )
    assert found == [f"kmsg-selftest: {token} first", f"kmsg-selftest: {token} second"]


def test_fails_after_its_deadline(follower: KmsgFollower) -> None:
    with pytest.raises(pytest.fail.Exception, match="within 0.2 s"):
        follower.wait_for(re.compile("never printed " + os.urandom(6).hex()), timeout_s=0.2)
