"""Fixture of the negative control: the unsafe programs (c/unsafe_*.c), started.

These tests only mean something on the negative-control kernel
(kernel-patches/negative/: ->start() sleeps on ->uring_lock instead of
trying it). There each order makes lockdep report and the self-read
deadlocks its task for good, so the harness boots that kernel once per file
here. On the series' kernel the same reads end in -EDEADLK or success and
the expected report never comes: the test fails, as it must.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from guest_runner import in_virtme_guest
from helpers import Helpers, Started

UnsafeOrder = Callable[[str], Started]


@pytest.fixture
def unsafe_order(helpers: Helpers) -> UnsafeOrder:
    """Starts c/unsafe_<order> (not waited for: the self-read never returns),
    only inside a virtme-ng guest."""
    if not in_virtme_guest():
        pytest.skip("not in a virtme-ng guest: the negative control deadlocks its kernel")

    def start(order: str) -> Started:
        return helpers.start(f"unsafe_{order}")
    return start
