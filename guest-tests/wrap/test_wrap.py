"""Checkpoint and restore of rings whose counters cross 2^32, on the wrap test kernel.

A ring's SQ head and CQ tail are free-running u32s that only the kernel moves, one
request or completion at a time: on 6.12 a ring gets near the wrap after 2^32
requests (about 2 h under TCG, and as long again for the restore's replay). The wrap
test kernel (kernel-patches/wrap/, never for merging) starts every new ring's
counters at kernel.io_uring_counter_base instead, as INITIAL_JIFFIES starts jiffies
near their wrap; the harness boots it for this directory and runs
test_uringcr_restore.py there too, so every restore scenario's original and copy
count across 2^32. On any other kernel these tests fail: they would prove nothing.

cr_pending leaves its counters 1005 past where its ring started, with the CQEs
from 1003 on unreaped and the SQEs from 1005 on unsubmitted (plain, big and defer
rings; an SQPOLL thread takes its SQEs): a base of 2^32 - 1004 puts the wrap
between the two unreaped CQEs, 2^32 - 1006 between the unsubmitted SQEs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from uringcr_run import RESUMED, Owner, Uringcr, dump_verify, owner_of, results, resume

BASE = Path("/proc/sys/kernel/io_uring_counter_base")
WRAP = 2**32
CQ_ACROSS = WRAP - 1004     # the kernel patch's default
SQ_ACROSS = WRAP - 1006

SetBase = Callable[[int], None]


@pytest.fixture
def counter_base() -> Iterator[SetBase]:
    """Sets where new rings' counters start; the boot's value comes back after."""
    if not BASE.exists():
        pytest.fail(f"{BASE} is missing: this is not the wrap test kernel "
                    "(kernel-patches/wrap/); `make wrap` or `make test` boots it",
                    pytrace=False)
    before = BASE.read_text()

    def set_base(value: int) -> None:
        BASE.write_text(f"{value}\n")
        assert int(BASE.read_text()) == value
    yield set_base
    BASE.write_text(before)


def counters(ring: dict[str, Any]) -> dict[str, int]:
    mem, kernel = ring["memory"], ring["kernel"]
    assert (mem["sq_head"], mem["cq_tail"]) == (kernel["cached_sq_head"],
                                                kernel["cached_cq_tail"])
    return {k: int(mem[k]) for k in ("sq_head", "sq_tail", "cq_head", "cq_tail")}


def test_new_rings_start_at_the_base(counter_base: SetBase, helpers: Helpers, ucr: Uringcr,
                                     owners: list[Owner], tmp_path: Path) -> None:
    """The kernel is the wrap test kernel: a new ring's four counters are at the base,
    whatever the base is set to (else every other test here proves nothing)."""
    for i, base in enumerate((CQ_ACROSS, WRAP - 7)):
        counter_base(base)
        owner = owner_of(helpers, owners, "cr_pending", "empty", label=f"empty-{i}")
        image = tmp_path / f"image{i}"
        ucr.dump(owner, image)
        ring = ucr.show(image)["rings"][0]
        assert counters(ring) == dict.fromkeys(("sq_head", "sq_tail", "cq_head", "cq_tail"),
                                               base)
        owner.go(helpers.budget.remaining())


def restored_across(helpers: Helpers, ucr: Uringcr, owners: list[Owner], image: Path,
                    kind: str, record_property: Any) -> tuple[dict[str, int], dict[str, Any]]:
    """cr_pending KIND dumped, verified and resumed in a new process: its counters,
    and verify's report. The copy continues as the original does."""
    owner = owner_of(helpers, owners, "cr_pending", kind)
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    ring = ucr.show(image)["rings"][0]
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_pending", kind, "resume", str(image), label=f"resume-{kind}")
    assert original, "the original printed no result"
    assert results(copy.output) == original
    assert int(copy.match(RESUMED).group("nops")) == verified["rings"][0]["nops"]
    return counters(ring), verified


@pytest.mark.parametrize("kind", ["plain", "big", "sqpoll", "defer"])
def test_unreaped_cqes_across_the_wrap(kind: str, counter_base: SetBase, helpers: Helpers,
                                       ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                                       record_property: Any) -> None:
    """CQ head below 2^32, CQ tail past it: the unreaped CQEs on both sides come back
    at their positions, and the replay (from the new ring's start, not from 0) takes
    the counters across the wrap again."""
    counter_base(CQ_ACROSS)
    got, verified = restored_across(helpers, ucr, owners, tmp_path / "image", kind,
                                    record_property)
    assert got["cq_head"] > got["cq_tail"], f"the CQ does not straddle the wrap: {got}"
    assert verified["rings"][0]["nops"] == (got["sq_head"] - CQ_ACROSS) % WRAP


@pytest.mark.parametrize("kind", ["plain", "big", "defer"])
def test_unsubmitted_sqes_across_the_wrap(kind: str, counter_base: SetBase, helpers: Helpers,
                                          ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                                          record_property: Any) -> None:
    """SQ head below 2^32, SQ tail past it: the unsubmitted SQEs on both sides come back
    at their positions and are submitted in order by the copy."""
    counter_base(SQ_ACROSS)
    got, verified = restored_across(helpers, ucr, owners, tmp_path / "image", kind,
                                    record_property)
    assert got["sq_head"] > got["sq_tail"], f"the SQ does not straddle the wrap: {got}"
    assert verified["rings"][0]["nops"] == (got["sq_head"] - SQ_ACROSS) % WRAP


def test_restored_into_a_ring_that_starts_elsewhere(counter_base: SetBase, helpers: Helpers,
                                                    ucr: Uringcr, owners: list[Owner],
                                                    tmp_path: Path,
                                                    record_property: Any) -> None:
    """An image taken at one base, restored where new rings start 3000 before the
    wrap: the replay covers the distance from there (the image's counters are past
    the wrap, the new ring's are not), and the copy dumps equal."""
    counter_base(CQ_ACROSS)
    owner = owner_of(helpers, owners, "cr_pending", "plain")
    image = tmp_path / "image"
    ucr.dump(owner, image)
    got = counters(ucr.show(image)["rings"][0])
    original = results(owner.go(helpers.budget.remaining()))
    start = WRAP - 3000
    counter_base(start)
    verified = ucr.verify(image)
    assert verified["rings"][0]["nops"] == (got["sq_head"] - start) % WRAP == got["sq_head"] + 3000
    copy = resume(helpers, "cr_pending", "plain", "resume", str(image), label="resume")
    assert results(copy.output) == original
