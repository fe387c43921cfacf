"""Fixture of the negative control: the helper in its unsafe orders.

These tests only mean something on the negative-control kernel
(kernel-patches/negative/: ->start() sleeps on ->uring_lock instead of
trying it). There each order makes lockdep report and the self-read
deadlocks its task for good, so the harness boots that kernel once per file
here. On the series' kernel the same reads end in -EDEADLK or success and
the expected report never comes: the test fails, as it must.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from guest_runner import in_virtme_guest
from unsafe import UnsafeOrder, start_unsafe


@pytest.fixture
def unsafe_order(guest_bin: Path) -> UnsafeOrder:
    """start_unsafe() for the helpers under test, only inside a virtme-ng guest."""
    if not in_virtme_guest():
        pytest.skip("not in a virtme-ng guest: the negative control deadlocks its kernel")
    return functools.partial(start_unsafe, guest_bin)
