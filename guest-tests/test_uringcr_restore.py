"""Checkpoint scenarios, what a restore brings back: each image a c/cr_*.c program's
ring gave is restored (liburingcr's ucr_restore_ring(), ucr_restore_image() for rings
that share buffers) and proven two ways:

- equality: `uringcr verify` restores it into itself, dumps that and compares the
  two images field by field (identity fields such as the ring's inode aside);
- behaviour: the scenario's resume mode restores it into a new process, which runs
  the same continuation as the resumed original; both print "result" lines, and
  they must be the same.

The restore's figures (time, NOPs replayed, the verdict) go to the report through
record_restore().
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from hugepages import reserved_hugetlb
from nullblk import polled_nullb
from uringcr_run import (RESUMED, UCR_FAILED, UCR_REFUSED, Owner, Uringcr, dump_verify,
                         owner_of, record_restore, record_stats, results, resume)

@pytest.mark.parametrize("kind", ["empty", "plain", "big", "sqpoll", "defer"])
def test_restore_pending(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                         tmp_path: Path, record_property: Any) -> None:
    """Counters, unreaped CQEs (CQE32 extras too) and unsubmitted SQEs come back, on
    every kind of ring: the copy dumps equal to the image, and it reaps the same
    CQEs, submits the same SQEs and goes on (NOPs, an IOSQE_IO_DRAIN) exactly as the
    original does."""
    owner = owner_of(helpers, owners, "cr_pending", kind)
    image = tmp_path / "image"
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    want_nops = 0 if kind == "empty" else 1000
    assert verified["rings"][0]["nops"] >= want_nops
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_pending", kind, "resume", str(image), label=f"resume-{kind}")
    assert original, "the original printed no result"
    assert results(copy.output) == original
    m = copy.match(RESUMED)
    assert int(m.group("nops")) == verified["rings"][0]["nops"]


def test_restore_twice_and_after_exit(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                      tmp_path: Path, record_property: Any) -> None:
    """One image restored twice, after its original process has exited: two
    independent rings that both continue as the original did."""
    owner = owner_of(helpers, owners, "cr_pending", "plain")
    image = tmp_path / "image"
    dump_verify(helpers, ucr, owner, image, record_property)
    original = results(owner.go(helpers.budget.remaining()))
    assert owner.started.proc.poll() is not None, "the original is still there"
    first = resume(helpers, "cr_pending", "plain", "resume", str(image), label="resume-1")
    second = resume(helpers, "cr_pending", "plain", "resume", str(image), label="resume-2")
    assert results(first.output) == results(second.output) == original
    ucr.verify(image, label="verify-again")


def test_restore_buffers(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                         record_property: Any) -> None:
    """A sparse table of buffers of every backing (THP, memfd shmem, hugetlb, one
    whose mapping was gone) comes back at the same addresses with the same contents,
    and fixed-buffer reads and writes through it give the same results."""
    with reserved_hugetlb(2) as why_not:
        owner = owner_of(helpers, owners, "cr_bufs", f"hugetlb={0 if why_not else 1}")
        image = tmp_path / "image"
        dump_verify(helpers, ucr, owner, image, record_property)
        wanted = owner.expect("buf")
        bufs = ",".join(f"{b['slot']}:{b['addr']}:{b['len']}" for b in wanted)
        original = results(owner.go(helpers.budget.remaining()))
        copy = resume(helpers, "cr_bufs", "resume", str(image), bufs, label="resume-bufs")
    assert len(original) == len(wanted)
    assert results(copy.output) == original


def rings_restored(helpers: Helpers, ucr: Uringcr, owners: list[Owner], name: str,
                   tmp_path: Path, record_property: Any) -> tuple[list[str], list[str]]:
    """Scenario @name's three rings dumped and verified, then its continuation's
    results in the resumed original and in a new process that restored them all
    (given the buffer table of the "expect buf" lines)."""
    owner = owner_of(helpers, owners, name)
    image = tmp_path / "image"
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    assert len(verified["rings"]) == 3
    table = owner.buf_table()
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, name, "resume", str(image), table, label=f"resume-{name}")
    return original, results(copy.output)


def test_restore_shared_buffers(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                tmp_path: Path, record_property: Any) -> None:
    """Three rings sharing buffers (CLONE_BUFFERS, then slot updates) come back
    sharing them: the copy dumps equal, references included, and a buffer that
    nothing maps carries data from one ring to another as in the original. The
    eventfd two of them share is one eventfd again: it counts both rings' CQEs."""
    original, copy = rings_restored(helpers, ucr, owners, "cr_shared", tmp_path,
                                    record_property)
    assert any(line.startswith("result slot3 ") for line in original), original
    assert any(line.startswith("result eventfd ") for line in original), original
    assert copy == original


@pytest.mark.parametrize("kind", ["attach", "clone", "pages"])
def test_restore_in_another_order(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                  tmp_path: Path, record_property: Any) -> None:
    """Rings that only another order than fd order sets up again: an SQPOLL thread's
    owner after a ring attached to it, a ring that shares buffers with two rings
    that share nothing, pages one ring registered and unmapped where another's are
    now. The restore sets them up in an order that works and gives them their fds in
    the image's order: the copy dumps equal and continues as the original does."""
    owner = owner_of(helpers, owners, "cr_order", kind)
    image = tmp_path / "image"
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    rings = owner.expect("ring")
    assert len(verified["rings"]) == len(rings)
    table = owner.buf_table()
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_order", kind, "resume", str(image), table or "none",
                  label=f"resume-{kind}")
    assert original, "the original printed no result"
    assert results(copy.output) == original
    fds = [int(fd) for fd in re.findall(r"^resume restored fd=(\d+)", copy.output, re.M)]
    assert len(fds) == len(rings) and fds == sorted(fds), f"not in the image's fd order: {fds}"


def test_restore_buffers_on_shared_pages(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                         tmp_path: Path, record_property: Any) -> None:
    """Rings that each registered the same memory come back over one set of pages
    again: the pool is mapped once for all three, G (which nothing maps) stays
    mapped until the last ring that pins it has registered it, and A's old page
    under slot 2 stays apart from the page now at its address."""
    original, copy = rings_restored(helpers, ucr, owners, "cr_pool", tmp_path, record_property)
    assert any(line.startswith("result g ") for line in original), original
    assert copy == original


@pytest.mark.parametrize("kind", ["plain", "sqpoll"])
def test_restore_polled_ring(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                             tmp_path: Path, record_property: Any) -> None:
    """An IORING_SETUP_IOPOLL ring on a block device that polls (null_blk, its file
    registered O_DIRECT), polled by the syscalls or, with SQPOLL, by the SQ thread:
    the image has the flags and the device, the copy dumps equal, and its polled
    reads get what the original wrote, as the resumed original's do."""
    with polled_nullb("uringcr-iopoll") as dev:
        owner = owner_of(helpers, owners, "cr_iopoll", kind, str(dev))
        want = owner.one("ring")
        image = tmp_path / "image"
        verified = dump_verify(helpers, ucr, owner, image, record_property)
        ring = ucr.show(image)["rings"][0]
        assert ring["setup"]["flags"] == want["flags"] and int(want["flags"]) & 1, ring["setup"]
        assert ("SQPOLL" in ring["setup"]["flag_names"]) == (kind == "sqpoll"), ring["setup"]
        files = ring["files"]["used"]
        assert [(f["slot"], f["path"]) for f in files] == [(0, str(dev))], files
        assert files[0]["flags"] & os.O_DIRECT, files[0]
        assert verified["rings"][0]["nops"] >= 3
        buf = owner.one("buf")
        original = results(owner.go(helpers.budget.remaining()))
        copy = resume(helpers, "cr_iopoll", kind, "resume", str(image), str(buf["addr"]),
                      label=f"resume-iopoll-{kind}")
    assert any(line.startswith("result read off=16384 ") for line in original), original
    assert results(copy.output) == original


def test_polled_read_in_flight_is_refused(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                          tmp_path: Path) -> None:
    """A polled read that nothing polls (its owner waits elsewhere) stays in flight:
    the drain waits it out and the dump refuses it by name, writing nothing; the
    owner's next wait polls it to its end."""
    with polled_nullb("uringcr-iopoll") as dev:
        owner = owner_of(helpers, owners, "cr_iopoll", "inflight", str(dev))
        report = ucr.check(owner, "--drain-timeout", "500", want=UCR_REFUSED)
        assert [r["name"] for r in report["refusals"]] == ["in-flight"], report
        assert "1 request still in flight" in report["refusals"][0]["why"], report
        ucr.dump(owner, tmp_path / "image", "--drain-timeout", "500", want=UCR_REFUSED)
        assert not (tmp_path / "image").exists()
        original = results(owner.go(helpers.budget.remaining()))
    assert original[0] == "result user_data=0x99 res=16384 flags=0x0", original


def test_restore_attached_rings(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                tmp_path: Path, record_property: Any) -> None:
    """Rings set up with IORING_SETUP_ATTACH_WQ come back attached: the copy dumps
    equal (sq_share included), and its SQPOLL rings run on two SQ threads as the
    original's do (one shared, one of a ring attached to a ring that is gone)."""
    owner = owner_of(helpers, owners, "cr_sqshare")
    image = tmp_path / "image"
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    assert len(verified["rings"]) == 4
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_sqshare", "resume", str(image), label="resume-sqshare")
    assert "result sq_threads=2" in original, original
    assert results(copy.output) == original


def test_restore_files(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                       record_property: Any) -> None:
    """Registered files and direct descriptors come back at their slots, at their
    positions, with the allocation range; no fd of them is left in the new process;
    the copy's reads, writes and opens give what the original's give."""
    owner = owner_of(helpers, owners, "cr_files")
    image = tmp_path / "image"
    dump_verify(helpers, ucr, owner, image, record_property)
    # the copy first: the original removes the files when it ends
    copy = resume(helpers, "cr_files", "resume", str(image), label="resume-files")
    original = results(owner.go(helpers.budget.remaining()))
    assert len(original) == 8
    assert results(copy.output) == original
    assert int(copy.match(RESUMED).group("fds")) == 1, "the restore left fds behind"


def test_restore_personalities(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                               tmp_path: Path, record_property: Any) -> None:
    """Personalities come back with their ids (the hole at 2 stays a hole, the next
    id stays 4) and their credentials: the copy may open what the original may, is
    refused what it is refused, and creates files owned as the original's are."""
    owner = owner_of(helpers, owners, "cr_pers")
    image = tmp_path / "image"
    verified = dump_verify(helpers, ucr, owner, image, record_property)
    assert verified["rings"][0]["pers_calls"] >= 3
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_pers", "resume", str(image), label="resume-pers")
    assert "result created id=3 uid=1001 gid=101" in original
    assert "result nop id=2 res=-22" in original
    assert results(copy.output) == original


def test_personality_of_another_user_namespace(helpers: Helpers, ucr: Uringcr,
                                              owners: list[Owner], tmp_path: Path) -> None:
    """A personality a task in a user namespace of its own registered: the image
    records the namespace, and a restore outside it (its credentials' ids and
    capabilities would mean something else here) fails naming both namespaces,
    before it has registered anything, and leaves nothing behind."""
    owner = owner_of(helpers, owners, "cr_pers", "userns")
    image = tmp_path / "image"
    ucr.dump(owner, image)
    inum = int(owner.one("userns")["inum"])
    pers = {p["id"]: p for p in ucr.show(image)["rings"][0]["personalities"]["used"]}
    assert pers[2]["userns"] == inum != pers[1]["userns"], pers
    finished = ucr.run("verify", image, label="verify-userns")
    want = f"personality 2 belongs to user namespace {inum}, the restore runs in"
    assert finished.returncode == UCR_FAILED and want in finished.output, finished.describe()
    copy = helpers.command(helpers.argv("cr_pers", ["userns", "resume", str(image)]),
                           label="resume-userns")
    assert copy.returncode != 0 and want in copy.output, copy.describe()
    left = copy.match(LEFTOVER)
    assert (int(left.group("fds")), int(left.group("maps"))) == (0, 0), copy.describe()
    owner.go(helpers.budget.remaining())


def test_restore_ring_settings(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                               tmp_path: Path, record_property: Any) -> None:
    """Restrictions (registered on the still disabled ring, then enabled), the async
    eventfd and its count, io-wq limits, the clock, NAPI busy polling and the file
    allocation range come back; the restrictions refuse in the copy what they refuse
    in the original."""
    owner = owner_of(helpers, owners, "cr_state")
    image = tmp_path / "image"
    dump_verify(helpers, ucr, owner, image, record_property)
    original = results(owner.go(helpers.budget.remaining()))
    copy = resume(helpers, "cr_state", "resume", str(image), label="resume-state")
    assert "result write res=-13" in original
    assert "result napi res=0 busy_poll_to=150 prefer=1" in original
    assert results(copy.output) == original
    assert int(copy.match(RESUMED).group("fds")) == 2, "the ring and its new eventfd"


def test_napi_timeout_of_an_unregistered_ring(helpers: Helpers, ucr: Uringcr,
                                             owners: list[Owner], tmp_path: Path,
                                             record_property: Any) -> None:
    """Until IORING_REGISTER_NAPI a ring's NAPI timeout is the net.core.busy_poll
    sysctl, copied at setup, which may pass the call's 10 ms cap. The dump carries
    the settings only when NAPI was registered: with the sysctl at 20000 us, a
    ring without NAPI still dumps, restores and verifies equal."""
    sysctl = Path("/proc/sys/net/core/busy_poll")
    if not sysctl.exists():
        pytest.fail(f"{sysctl} is missing: the guest config needs CONFIG_NET_RX_BUSY_POLL",
                    pytrace=False)
    old = sysctl.read_text()
    sysctl.write_text("20000\n")
    try:
        owner = owner_of(helpers, owners, "cr_pending", "plain")
    finally:
        sysctl.write_text(old)
    image = tmp_path / "image"
    dump_verify(helpers, ucr, owner, image, record_property)
    napi = ucr.show(image)["rings"][0]["state"]["napi"]
    assert napi == {"enabled": False, "busy_poll_us": 0, "prefer": False}, napi
    owner.go(helpers.budget.remaining())


def test_restore_registered_ring(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                 tmp_path: Path, record_property: Any) -> None:
    """A ring also registered as a registered ring fd comes back at the same index."""
    owner = owner_of(helpers, owners, "cr_regring", "with-fd")
    dump_verify(helpers, ucr, owner, tmp_path / "image", record_property)
    owner.go(helpers.budget.remaining())


LEFTOVER = re.compile(r"^resume leftover fds=(?P<fds>-?\d+) maps=(?P<maps>-?\d+)$")


def test_failed_restore_leaves_nothing(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                       tmp_path: Path) -> None:
    """A restore that fails half way (a registered file removed after the dump: the
    ring, its mappings and the other files are already there) names the part and the
    step, and leaves no fd and no mapping behind."""
    owner = owner_of(helpers, owners, "cr_files")
    image = tmp_path / "image"
    ucr.dump(owner, image)
    gone = next(f for f in owner.expect("file") if int(f["slot"]) == 12)
    os.rename(str(gone["path"]), f"{gone['path']}.away")
    try:
        finished = helpers.command(helpers.argv("cr_files", ["resume", str(image)]),
                                   label="resume-missing-file")
    finally:
        os.rename(f"{gone['path']}.away", str(gone["path"]))
    assert finished.returncode != 0, finished.describe()
    assert "(part ring0.txt), reopening the registered files: file slot 12" in finished.output
    left = finished.match(LEFTOVER)
    assert (int(left.group("fds")), int(left.group("maps"))) == (0, 0), finished.describe()
    owner.go(helpers.budget.remaining())


def test_failed_restore_of_a_later_ring_leaves_nothing(helpers: Helpers, ucr: Uringcr,
                                                       owners: list[Owner],
                                                       tmp_path: Path) -> None:
    """ucr_restore_image() failing at the third ring (an address of its own part of
    the pool taken) names that ring and step, and leaves nothing of the first two:
    their rings, and the pool and the unmapped pages they mapped, go too."""
    owner = owner_of(helpers, owners, "cr_pool")
    image = tmp_path / "image"
    ucr.dump(owner, image)
    table = owner.buf_table()
    finished = resume(helpers, "cr_pool", "resume", str(image), table, "taken",
                      label="resume-pool-taken")
    assert "ring 2 (part ring2.txt), reserving the buffers' addresses: buffer slot 0" \
        in finished.output, finished.describe()
    left = finished.match(LEFTOVER)
    assert (int(left.group("fds")), int(left.group("maps"))) == (0, 0), finished.describe()
    owner.go(helpers.budget.remaining())


@pytest.mark.parametrize("kind", ["plain", "sqpoll", "defer"])
def test_restore_behaviour(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                           tmp_path: Path, record_property: Any) -> None:
    """The same continuation on a plain, an SQPOLL and a DEFER_TASKRUN ring, in the
    resumed original and in the restored copy: the pending CQEs, then a fixed-buffer
    read from a registered file under a personality, a fixed-buffer write to a
    direct descriptor, a read back, an open the personality is refused, a drain."""
    owner = owner_of(helpers, owners, "cr_mixed", kind)
    image = tmp_path / "image"
    dump_verify(helpers, ucr, owner, image, record_property)
    addr = str(owner.one("buf")["addr"])
    # the copy first: both use the original's files
    copy = resume(helpers, "cr_mixed", kind, "resume", str(image), addr, label=f"resume-{kind}")
    original = results(owner.go(helpers.budget.remaining()))
    assert "result open_secret_as_1000 res=-13" in original
    assert len(original) == (9 if kind == "sqpoll" else 10)
    assert results(copy.output) == original
