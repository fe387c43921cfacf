"""Checkpoint scenarios, what a dump carries: uringcr dumps the rings that c/cr_*.c
programs built, from another process, and every image is checked field by field
against what the program registered and did, and against views that do not come
from uringcr (fdinfo, maps, pagemap, stat). After each dump the owner checks that
its ring is exactly as it left it and still works (uringcr_run.Owner.go).
Refusals and the freezer's guarantees are in test_uringcr_safety.py, the image
reader in test_uringcr_image.py; the fixtures `ucr` and `owners` in conftest.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from hugepages import reserved_hugetlb
from uringcr_run import (UCR_OK, UCR_REFUSED, Owner, Uringcr, bvec_pfns, fdinfo, pagemap_pfns,
                         proc_state, record_restore, record_stats, ring_maps, owner_of,
                         the_ring)

O_ACCMODE, O_APPEND, O_DIRECTORY = 0o3, 0o2000, 0o200000
ETIME = 62

def check_ring_fields(ring: dict[str, Any], want: dict[str, int | str], owner: Owner) -> None:
    """What every scenario's ring must show: its identity, setup and mappings."""
    assert ring["ino"] == want["ino"]
    assert ring["setup"]["flags"] == want["flags"]
    assert ring["setup"]["sq_entries"] == want["sq_entries"]
    assert ring["setup"]["cq_entries"] == want["cq_entries"]
    maps = ring_maps(owner.pid, int(want["ino"]))
    assert [(m["start"], m["end"], m["pgoff"]) for m in ring["maps"]] == maps


@pytest.mark.parametrize("kind", ["empty", "plain", "big", "sqpoll", "defer"])
def test_dump_pending(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                      tmp_path: Path, record_property: Any) -> None:
    """Counters, unreaped CQEs and unsubmitted SQEs, on every kind of ring."""
    owner = owner_of(helpers, owners, "cr_pending", kind)
    want_ring = owner.one("ring")
    counters = owner.one("counters")
    fd = int(want_ring["fd"])
    info_before = fdinfo(owner.pid, fd)
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    assert report["dumpable"] and report["refusals"] == []
    ring = the_ring(ucr.show(tmp_path / "image"), fd)
    check_ring_fields(ring, want_ring, owner)

    mem, kernel = ring["memory"], ring["kernel"]
    for key in ("sq_head", "sq_tail", "cq_head", "cq_tail"):
        assert mem[key] == counters[key], key
    # fdinfo is an independent view of the same counters
    assert mem["sq_head"] == int(info_before["SqHead"]) == kernel["cached_sq_head"]
    assert mem["sq_tail"] == int(info_before["SqTail"])
    assert mem["cq_head"] == int(info_before["CqHead"])
    assert mem["cq_tail"] == int(info_before["CqTail"]) == kernel["cached_cq_tail"]

    sqes = [(s["position"], s["user_data"], s["opcode"]) for s in ring["sqes_pending"]]
    assert sqes == [(e["position"], e["user_data"], e["opcode"]) for e in owner.expect("sqe")]
    cqes = [(c["user_data"], c["res"], c["flags"]) for c in ring["cqes_pending"]]
    assert cqes == [(e["user_data"], e["res"], e["flags"]) for e in owner.expect("cqe")]
    if kind == "empty":
        assert mem["sq_head"] == mem["cq_tail"] == 0
    else:
        assert mem["cq_tail"] >= 1000, "the history NOPs are not in the counters"
    big = kind == "big"
    assert (ring["setup"]["sqe_size"], ring["setup"]["cqe_size"]) == ((128, 32) if big else (64, 16))
    if big:
        assert all(c["big_cqe"] == [0, 0] for c in ring["cqes_pending"])
    if kind == "sqpoll":
        assert ring["setup"]["sq_thread_idle_ms"] == 1000
    if kind == "defer":
        assert ring["state"]["submitter_tid"] == owner.pid
    owner.go(helpers.budget.remaining())


def test_dump_buffers(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                      record_property: Any) -> None:
    """A sparse table of buffers of every size and backing, with their contents."""
    with reserved_hugetlb(1) as why_not:
        owner = owner_of(helpers, owners, "cr_bufs", f"hugetlb={0 if why_not else 1}")
        want_ring = owner.one("ring")
        _, report = ucr.dump(owner, tmp_path / "image")
        record_stats(record_property, report)
        ring = the_ring(ucr.show(tmp_path / "image"), int(want_ring["fd"]))
        check_ring_fields(ring, want_ring, owner)
        wanted = {int(b["slot"]): b for b in owner.expect("buf")}
        assert ring["buffers"]["slots"] == owner.one("bufs")["slots"]
        got = {b["slot"]: b for b in ring["buffers"]["used"]}
        assert sorted(got) == sorted(wanted), "the image's slots are not the registered ones"
        pages = 0
        for slot, want in wanted.items():
            buf = got[slot]
            assert (buf["addr"], buf["len"]) == (want["addr"], want["len"]), f"slot {slot}"
            contents = (tmp_path / "image" / buf["part"]).read_bytes()
            assert zlib.crc32(contents) == want["crc32"], f"slot {slot}: contents"
            assert buf["mapped"] == bool(want["mapped"]), f"slot {slot}: mapped"
            # the pages the image says are pinned are the ones mapped there, if any
            mapped = pagemap_pfns(owner.pid, buf["addr"], buf["len"])
            if want["mapped"]:
                assert bvec_pfns(buf) == mapped, f"slot {slot}: pinned pages"
            else:
                assert not set(bvec_pfns(buf)) & set(mapped), f"slot {slot}: still mapped"
            pages += (buf["len"] + 4095) // 4096
        assert report["stats"]["pages_written"] == pages
        if not why_not:
            assert got[11]["folio_shift"] == 21 and got[11]["nr_bvecs"] == 1, \
                "the hugetlb buffer is not one 2 MiB folio"
        owner.go(helpers.budget.remaining())


def dumped_buffers(ucr: Uringcr, owner: Owner, image: Path, record_property: Any
                   ) -> tuple[dict[tuple[int, int], Any], dict[tuple[int, int], Any]]:
    """The dump of an owner with several rings: its buffers and the program's
    "expect buf" lines, both by (ring, slot), checked to be the same slots at the
    same addresses, mapped or not as expected, with the same contents."""
    rings = owner.expect("ring")
    _, report = ucr.dump(owner, image)
    record_stats(record_property, report)
    shown = ucr.show(image)
    assert [r["fd"] for r in shown["rings"]] == [r["fd"] for r in rings]
    got = {(i, b["slot"]): b for i, r in enumerate(shown["rings"])
           for b in r["buffers"]["used"]}
    wanted = {(int(b["ring"]), int(b["slot"])): b for b in owner.expect("buf")}
    assert sorted(got) == sorted(wanted), "the image's slots are not the registered ones"
    for key, want in wanted.items():
        buf = got[key]
        assert (buf["addr"], buf["len"], buf["mapped"]) == \
            (want["addr"], want["len"], bool(want["mapped"])), f"ring {key[0]} slot {key[1]}"
        contents = (image / buf["part"]).read_bytes()
        assert zlib.crc32(contents) == want["crc32"], f"ring {key[0]} slot {key[1]}: contents"
    return got, wanted


def test_dump_shared_buffers(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                             tmp_path: Path, record_property: Any) -> None:
    """Buffers shared between three rings (CLONE_BUFFERS, then slot updates) are
    dumped with their references, and one buffer has one id in every ring that
    holds it; the one nothing maps any more has its contents too. Two of the rings
    share an eventfd, and their images name the same one."""
    owner = owner_of(helpers, owners, "cr_shared")
    got, wanted = dumped_buffers(ucr, owner, tmp_path / "image", record_property)
    for key, want in wanted.items():
        assert got[key]["refs"] == want["refs"], f"ring {key[0]} slot {key[1]}"
    # A and B registered one eventfd, C its own: the image names the owner's fds
    evfds = [r["eventfd"]["fd"] for r in ucr.show(tmp_path / "image")["rings"]]
    assert evfds[0] == evfds[1] != evfds[2], evfds
    # the same buffer object where the program shared it, a different one elsewhere
    by_addr: dict[int, set[int]] = {}
    for buf in got.values():
        by_addr.setdefault(buf["addr"], set()).add(buf["id"])
    assert all(len(ids) == 1 for ids in by_addr.values()), by_addr
    assert len({b["id"] for b in got.values()}) == len(by_addr)
    for key, buf in got.items():
        holders = [k for k, b in got.items() if b["id"] == buf["id"]]
        assert len(holders) == buf["refs"], f"ring {key[0]} slot {key[1]}: held by {holders}"
    owner.go(helpers.budget.remaining())


def test_dump_buffers_on_shared_pages(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                      tmp_path: Path, record_property: Any) -> None:
    """Rings that each registered the same memory on their own: every buffer its
    own object (refs 1, ids apart), and the bvecs' pfns say which pages are one:
    the pool's and G's (which nothing maps) are shared, A's and B's slot 2 are not."""
    owner = owner_of(helpers, owners, "cr_pool")
    got, _ = dumped_buffers(ucr, owner, tmp_path / "image", record_property)
    assert all(b["refs"] == 1 for b in got.values()), got
    assert len({b["id"] for b in got.values()}) == len(got), "a buffer object held twice"

    def page(key: tuple[int, int], addr: int) -> int:
        buf = got[key]
        return bvec_pfns(buf)[(addr - (buf["addr"] & ~4095)) >> 12]

    pool = int(got[(0, 0)]["addr"])
    for key, at in (((1, 0), pool + 16384), ((1, 1), pool + 20480), ((2, 0), pool + 56 * 1024)):
        assert page(key, at) == page((0, 0), at), f"ring {key[0]} slot {key[1]}: not the pool's page"
    g = int(got[(0, 1)]["addr"])
    assert bvec_pfns(got[(2, 1)]) == bvec_pfns(got[(0, 1)]), "G is not one set of pages"
    assert not got[(0, 1)]["mapped"] and not got[(2, 1)]["mapped"], g
    assert bvec_pfns(got[(0, 2)]) != bvec_pfns(got[(1, 2)]), "A's slot 2 has the new page"
    owner.go(helpers.budget.remaining())


def test_dump_attached_rings(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                             tmp_path: Path, record_property: Any) -> None:
    """Rings set up with IORING_SETUP_ATTACH_WQ: two SQPOLL rings on one SQ thread
    (the image's sq_share names the first ring on it, fdinfo shows one thread pid),
    a plain ring that only carries the flag, an SQPOLL ring alone on the thread of
    a ring that is gone."""
    owner = owner_of(helpers, owners, "cr_sqshare")
    wanted = owner.expect("ring")
    threads = [fdinfo(owner.pid, int(w["fd"])).get("SqThread") for w in wanted]
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    image = ucr.show(tmp_path / "image")
    assert [r["fd"] for r in image["rings"]] == [w["fd"] for w in wanted]
    for ring, want in zip(image["rings"], wanted):
        assert ring["setup"]["flags"] == want["flags"], ring["setup"]
        assert ring["setup"]["sq_share"] == want["sq_share"], ring["setup"]
        if int(want["sq_share"]) >= 0:
            assert ring["setup"]["sq_thread_idle_ms"] == want["idle_ms"], ring["setup"]
    assert threads[0] == threads[1] and threads[0] not in (None, "-1"), threads
    assert threads[3] not in (None, "-1", threads[0]), threads
    assert owner.one("threads")["sq"] == 2
    owner.go(helpers.budget.remaining())


def test_dump_files(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                    record_property: Any) -> None:
    """Registered files and direct descriptors (no fd in the task), by slot."""
    owner = owner_of(helpers, owners, "cr_files")
    want_ring = owner.one("ring")
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    ring = the_ring(ucr.show(tmp_path / "image"), int(want_ring["fd"]))
    check_ring_fields(ring, want_ring, owner)
    table = owner.one("files")
    assert ring["files"]["slots"] == table["slots"]
    assert ring["state"]["file_alloc"] == [table["alloc_start"], table["alloc_end"]]
    got = {f["slot"]: f for f in ring["files"]["used"]}
    wanted = {int(f["slot"]): f for f in owner.expect("file")}
    assert sorted(got) == sorted(wanted)
    mask = O_ACCMODE | O_APPEND | O_DIRECTORY
    for slot, want in wanted.items():
        f = got[slot]
        assert f["path"] == want["path"], f"slot {slot}"
        assert (f["dev_major"], f["dev_minor"], f["ino"]) == \
            (want["dev_major"], want["dev_minor"], want["ino"]), f"slot {slot}: identity"
        assert f["pos"] == want["pos"], f"slot {slot}: position"
        assert f["flags"] & mask == int(want["flags"]) & mask, f"slot {slot}: flags"
    # no fd of the task names the direct descriptors' files
    fds = {os.readlink(p) for p in Path(f"/proc/{owner.pid}/fd").iterdir()}
    assert not any(str(got[s]["path"]) in fds for s in (7, 12))
    owner.go(helpers.budget.remaining())


def test_registered_ring_with_fd(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                 tmp_path: Path) -> None:
    owner = owner_of(helpers, owners, "cr_regring", "with-fd")
    reg = owner.one("regring")
    ucr.dump(owner, tmp_path / "image")
    ring = the_ring(ucr.show(tmp_path / "image"), int(reg["fd"]))
    assert ring["registered"] == {"tid": reg["tid"], "index": reg["index"]}
    owner.go(helpers.budget.remaining())


def test_registered_ring_only_is_refused(helpers: Helpers, ucr: Uringcr,
                                         owners: list[Owner], tmp_path: Path) -> None:
    """A ring the task holds only by its registered index: no fd, no /proc file."""
    owner = owner_of(helpers, owners, "cr_regring", "only")
    report = ucr.check(owner, want=UCR_REFUSED)
    names = [r["name"] for r in report["refusals"]]
    assert names == ["registered-ring-only"], report
    assert f"registered ring fd {owner.one('hidden')['index']}" in report["refusals"][0]["why"]
    finished, _ = ucr.dump(owner, tmp_path / "image", want=UCR_REFUSED)
    assert "registered-ring-only" in finished.output
    assert not (tmp_path / "image").exists()
    owner.go(helpers.budget.remaining())


def test_drain_waits_for_a_timeout(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                   tmp_path: Path, record_property: Any) -> None:
    """A request that completes while the dumper waits: its CQE is in the image."""
    owner = owner_of(helpers, owners, "cr_inflight", "timeout")
    want = owner.one("inflight")
    drain_ms = int(20000 * helpers.timeout_scale)
    _, report = ucr.dump(owner, tmp_path / "image", "--drain-timeout", str(drain_ms))
    record_stats(record_property, report)
    ring = the_ring(ucr.show(tmp_path / "image"), int(owner.one("ring")["fd"]))
    assert [(c["user_data"], c["res"]) for c in ring["cqes_pending"]] == \
        [(want["user_data"], -ETIME)]
    # it was in flight when the dump began: the dumper waited for it
    assert report["stats"]["drain_time_us"] >= 100_000, report["stats"]
    record_restore(record_property, ucr.verify(tmp_path / "image"))
    owner.go(helpers.budget.remaining())


def test_drain_timeout_fails_and_names_the_request(helpers: Helpers, ucr: Uringcr,
                                                   owners: list[Owner], tmp_path: Path) -> None:
    """A read of an empty pipe never completes: the dump fails, the owner runs on."""
    owner = owner_of(helpers, owners, "cr_inflight", "pipe")
    finished, report = ucr.dump(owner, tmp_path / "image", "--drain-timeout", "300",
                                want=UCR_REFUSED)
    assert [r["name"] for r in report["refusals"]] == ["in-flight"]
    why = report["refusals"][0]["why"]
    assert "1 request still in flight" in why and "READ(22)" in why, why
    assert not (tmp_path / "image").exists()
    assert owner.wait_state(False, 5 * helpers.timeout_scale) != "T"
    owner.go(helpers.budget.remaining())


FDINFO_FILE = re.compile(r"^\s*(\d+): (\S+)$")
FDINFO_BUF = re.compile(r"^\s*(\d+): 0x([0-9a-f]+)/(\d+)$")


def _fdinfo_tables(pid: int, fd: int, timeout: float) -> tuple[dict[int, str], dict[int, tuple[int, int]]]:
    """The file and buffer tables of a ring's fdinfo: fdinfo drops its lists when
    it loses a trylock of uring_lock, so it is read until they are whole."""
    deadline = time.monotonic() + timeout
    while True:
        text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        files: dict[int, str] = {}
        bufs: dict[int, tuple[int, int]] = {}
        section = ""
        nr_files = nr_bufs = -1
        for line in text.splitlines():
            if line.startswith("UserFiles:"):
                section, nr_files = "files", int(line.split()[1])
            elif line.startswith("UserBufs:"):
                section, nr_bufs = "bufs", int(line.split()[1])
            elif not line.startswith(" "):
                section = ""
            elif section == "files" and (m := FDINFO_FILE.match(line)):
                files[int(m.group(1))] = m.group(2)
            elif section == "bufs" and (m := FDINFO_BUF.match(line)):
                bufs[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3)))
        if len(files) == nr_files and len(bufs) == nr_bufs:
            return files, bufs
        if time.monotonic() > deadline:
            pytest.fail(f"fdinfo never showed whole tables:\n{text}", pytrace=False)
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _ring_fds(pid: int) -> list[int]:
    fds = []
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(link) == "anon_inode:[io_uring]":
                fds.append(int(link.name))
        except OSError:
            pass
    return fds


def test_dump_fio(helpers: Helpers, ucr: Uringcr, tmp_path: Path, record_property: Any) -> None:
    """A program this project did not write: fio's io_uring engine with registered
    files and fixed buffers, dumped while it runs, checked against /proc and fdinfo."""
    fio = shutil.which("fio")
    if fio is None:
        pytest.fail("fio is missing: `make setup` installs it (harness/deps.py)", pytrace=False)
    data = Path(f"/dev/shm/uringcr-fio-{os.getpid()}")
    log = tmp_path / "fio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([fio, "--name=ucr", "--ioengine=io_uring", f"--filename={data}",
                                 "--size=1M", "--bs=4k", "--rw=randread", "--iodepth=4",
                                 "--registerfiles=1", "--fixedbufs=1", "--time_based",
                                 f"--runtime={int(300 * helpers.timeout_scale)}"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30 * helpers.timeout_scale
        job, fds = 0, list[int]()
        while not fds:
            for pid in [proc.pid, *_children(proc.pid)]:
                try:
                    fds = _ring_fds(pid)
                except OSError:
                    fds = []
                if fds:
                    job = pid
                    break
            if not fds:
                assert proc.poll() is None, f"fio exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"fio never set up a ring:\n{log.read_text()}"
                time.sleep(0.1)
        assert len(fds) == 1, f"fio's job has rings at {fds}"
        files, bufs = _fdinfo_tables(job, fds[0], 10 * helpers.timeout_scale)
        image = tmp_path / "image"
        # fio keeps its queue full: each of the drain's thaws lets it submit again, and
        # under TCG the default 2 s bound was seen to pass with one read still in io-wq
        drain_ms = str(int(2000 * helpers.timeout_scale))
        finished = ucr.run("dump", "--pid", str(job), "-o", image, "--json",
                           "--drain-timeout", drain_ms, label="dump-fio")
        assert finished.returncode == UCR_OK, finished.describe()
        record_stats(record_property, ucr.json_of(finished))
        assert proc_state(job) != "T", "fio's job was left stopped"
        ring = the_ring(ucr.show(image), fds[0])
        got_files = {f["slot"]: f for f in ring["files"]["used"]}
        assert {s: Path(f["path"]).name for s, f in got_files.items()} == files
        assert got_files[0]["path"] == str(data)
        st = data.stat()
        assert got_files[0]["ino"] == st.st_ino
        got_bufs = {b["slot"]: (b["addr"], b["len"]) for b in ring["buffers"]["used"]}
        assert got_bufs == bufs and len(bufs) >= 4, (got_bufs, bufs)
        assert proc.poll() is None, "fio did not survive the dump"
        # fio's ring restored into uringcr (while fio runs: its file is there) dumps equal
        record_restore(record_property, ucr.verify(image, "--progress"))
    finally:
        proc.terminate()
        try:
            proc.wait(30 * helpers.timeout_scale)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        data.unlink(missing_ok=True)


@pytest.mark.timeout_s(300)  # 16384 parts, dumped twice and restored: 2 minutes under TCG
def test_dump_many(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                   record_property: Any) -> None:
    """16384 buffers (IORING_MAX_REG_BUFFERS) and 65536 file slots in one ring."""
    owner = owner_of(helpers, owners, "cr_many")
    want_ring, bufs, files = owner.one("ring"), owner.one("bufs"), owner.one("files")
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    ring = the_ring(ucr.show(tmp_path / "image", keep=False), int(want_ring["fd"]))
    used = ring["buffers"]["used"]
    assert ring["buffers"]["slots"] == bufs["slots"] and len(used) == bufs["used"]
    assert sum(b["addr"] for b in used) == bufs["sum_addr"]
    assert sum(b["len"] for b in used) == bufs["sum_len"]
    crc = 0
    for b in used:
        crc = zlib.crc32((tmp_path / "image" / b["part"]).read_bytes(), crc)
    assert crc == bufs["crc32"], "the contents, in slot order"
    fused = ring["files"]["used"]
    assert ring["files"]["slots"] == files["slots"] and len(fused) == files["used"]
    by_path = {p: sum(f["path"] == p for f in fused) for p in ("/dev/null", "/dev/zero", "/dev/full")}
    assert by_path == {"/dev/null": files["null"], "/dev/zero": files["zero"],
                       "/dev/full": files["full"]}
    assert all(f["slot"] % 3 != 1 for f in fused)
    record_restore(record_property, ucr.verify(tmp_path / "image", "--progress"))
    owner.go(helpers.budget.remaining())


def _id_list(value: int | str) -> list[int]:
    return [] if value == "-" else [int(x) for x in str(value).split(",")]


def test_dump_personalities(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                            tmp_path: Path, record_property: Any) -> None:
    """Personalities by id, with their credentials (one registered by a thread with
    other ids, one unregistered again), checked against fdinfo."""
    owner = owner_of(helpers, owners, "cr_pers")
    want_ring = owner.one("ring")
    fd = int(want_ring["fd"])
    info = Path(f"/proc/{owner.pid}/fdinfo/{fd}").read_text()
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    ring = the_ring(ucr.show(tmp_path / "image"), fd)
    pers = ring["personalities"]
    table = owner.one("personalities")
    assert pers["next"] == table["next"] and len(pers["used"]) == table["used"]
    got = {p["id"]: p for p in pers["used"]}
    for want in owner.expect("pers"):
        p = got[int(want["id"])]
        assert p["uids"] == _id_list(want["uids"]), p
        assert p["gids"] == _id_list(want["gids"]), p
        assert p["groups"] == _id_list(want["groups"]), p
    assert got[3]["cap_effective"] == 0 and got[1]["cap_effective"] != 0
    # fdinfo (when it won its trylock) lists the same ids and CapEff
    if "Personalities:" in info:
        fd_ids = [int(line) for line in info.splitlines() if line.strip().isdigit()]
        assert fd_ids == sorted(got), info
        caps = [int(line.split()[1], 16) for line in info.splitlines()
                if line.strip().startswith("CapEff:")]
        assert caps == [got[i]["cap_effective"] for i in sorted(got)]
    owner.go(helpers.budget.remaining())


def test_dump_ring_settings(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                            tmp_path: Path, record_property: Any) -> None:
    """Restrictions and the enabled state, an async eventfd with its count, io-wq
    worker limits, the clock, NAPI busy polling, the file allocation range."""
    owner = owner_of(helpers, owners, "cr_state")
    want_ring = owner.one("ring")
    _, report = ucr.dump(owner, tmp_path / "image")
    record_stats(record_property, report)
    ring = the_ring(ucr.show(tmp_path / "image"), int(want_ring["fd"]))
    ev, want_ev = ring["eventfd"], owner.one("eventfd")
    assert ev == {"fd": want_ev["fd"], "async": True, "count": want_ev["count"]}
    assert os.readlink(f"/proc/{owner.pid}/fd/{ev['fd']}") == "anon_inode:[eventfd]"
    r, want_r = ring["restrictions"], owner.one("restrictions")
    assert r["registered"] and r["enabled"]
    assert (r["register_op"], r["sqe_op"], r["flags_allowed"], r["flags_required"]) == \
        (want_r["register_op"], want_r["sqe_op"], want_r["flags_allowed"],
         want_r["flags_required"])
    assert ring["state"]["enabled"], "the ring was enabled after its restrictions"
    assert "R_DISABLED" not in ring["setup"]["flag_names"]
    iowq = owner.one("iowq")
    assert ring["state"]["iowq_limits_set"]
    assert ring["state"]["iowq_limits"] == [iowq["bounded"], iowq["unbounded"]]
    assert ring["state"]["clockid"] == owner.one("clock")["clockid"]
    napi = owner.one("napi")
    assert ring["state"]["napi"] == {"enabled": True, "busy_poll_us": napi["busy_poll_us"],
                                     "prefer": bool(napi["prefer"])}
    files = owner.one("files")
    assert ring["files"]["slots"] == files["slots"] and ring["files"]["used"] == []
    assert ring["state"]["file_alloc"] == [files["alloc_start"], files["alloc_end"]]
    owner.go(helpers.budget.remaining())
