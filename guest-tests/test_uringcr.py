"""Checkpoint scenarios: uringcr dumps the rings that c/cr_*.c programs built,
from another process, and every image is checked field by field against what
the program registered and did, and against views that do not come from
uringcr (fdinfo, maps, pagemap, stat). After each dump the owner checks that
its ring is exactly as it left it and still works (uringcr_run.Owner.go).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from hugepages import reserved_hugetlb
from uringcr_run import (UCR_FAILED, UCR_OK, UCR_REFUSED, Owner, Uringcr, bvec_pfns, fdinfo,
                         pagemap_pfns, proc_state, record_stats, ring_maps, start_owner)

O_ACCMODE, O_APPEND, O_DIRECTORY = 0o3, 0o2000, 0o200000
ETIME = 62
FUZZ_LINE = re.compile(r"^fuzz rounds=(\d+) refused=(\d+) accepted=(\d+) sealed_refused=(\d+)$")


@pytest.fixture
def ucr(helpers: Helpers) -> Uringcr:
    return Uringcr(helpers)


@pytest.fixture
def owners() -> Iterator[list[Owner]]:
    """Owners the test starts; killed at the end if still there."""
    started: list[Owner] = []
    yield started
    for owner in started:
        owner.kill()


def owner_of(helpers: Helpers, owners: list[Owner], name: str, *args: str,
             label: str | None = None) -> Owner:
    owner = start_owner(helpers, name, *args, label=label)
    owners.append(owner)
    return owner


def the_ring(image: dict[str, Any], fd: int) -> dict[str, Any]:
    rings = [r for r in image["rings"] if r["fd"] == fd]
    assert len(rings) == 1, f"the image has {len(rings)} rings at fd {fd}: {image['rings']}"
    return rings[0]


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


REFUSALS = ["iopoll", "attach-wq", "nommap", "napi", "eventfd", "pbuf", "pers64", "regtwice",
            "longpath", "socket",
            "pipe", "unlinked", "unmapped", "shared", "overflow"]


@pytest.mark.parametrize("kind", REFUSALS)
def test_refusal(kind: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                 tmp_path: Path) -> None:
    """Each thing the image cannot carry is named by check and fails the dump."""
    owner = owner_of(helpers, owners, "cr_refuse", kind)
    name = str(owner.one("refusal")["name"])
    # an unmapped buffer is read through /proc/kcore (test_dump_buffers); without it, refused
    env = ("env", "UCR_NO_KCORE=1") if kind == "unmapped" else ()
    report = ucr.check(owner, want=UCR_REFUSED, prefix=env)
    assert name in [r["name"] for r in report["refusals"]], report
    finished, _ = ucr.dump(owner, tmp_path / "image", want=UCR_REFUSED, prefix=env)
    assert f"first: {name}" in finished.output or name in finished.output
    assert not (tmp_path / "image").exists() and not (tmp_path / "image.partial").exists()
    owner.go(helpers.budget.remaining())


def test_unprivileged_dumper_is_refused(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                        tmp_path: Path) -> None:
    """Without ptrace rights over the owner, uringcr names the missing right."""
    owner = owner_of(helpers, owners, "cr_pending", "empty")
    image = tmp_path / "image"
    tmp_path.chmod(0o777)
    finished = ucr.run("dump", "--pid", str(owner.pid), "-o", image, label="dump-nobody",
                       prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    assert finished.returncode == UCR_FAILED, finished.describe()
    assert "ptrace" in finished.output, finished.describe()
    assert not image.exists()
    owner.go(helpers.budget.remaining())


def test_killed_dumper_resumes_the_owner(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                         tmp_path: Path) -> None:
    """SIGKILL of uringcr while the owner is stopped: its guardian resumes it."""
    owner = owner_of(helpers, owners, "cr_pending", "plain")
    image = tmp_path / "image"
    hold = int(60000 * helpers.timeout_scale)
    dumper = subprocess.Popen([str(ucr.exe), "dump", "--pid", str(owner.pid), "-o", str(image),
                               "--hold-frozen", str(hold)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        state = owner.wait_state(True, 20 * helpers.timeout_scale)
        assert state == "T", f"uringcr never stopped the owner (state {state!r})"
        dumper.send_signal(signal.SIGKILL)
        dumper.wait(10)
        state = owner.wait_state(False, 10 * helpers.timeout_scale)
        assert state not in ("T", ""), f"the owner is still {state!r} after the dumper died"
    finally:
        if dumper.poll() is None:
            dumper.kill()
            dumper.wait(10)
    assert not image.exists()
    owner.go(helpers.budget.remaining())


def test_dump_refuses_an_existing_directory(helpers: Helpers, ucr: Uringcr,
                                            owners: list[Owner], tmp_path: Path) -> None:
    owner = owner_of(helpers, owners, "cr_pending", "empty")
    (tmp_path / "image").mkdir()
    finished, _ = ucr.dump(owner, tmp_path / "image", want=UCR_FAILED)
    assert "exists" in finished.output and "never overwrites" in finished.output
    assert proc_state(owner.pid) != "T"
    owner.go(helpers.budget.remaining())


def _image_of(helpers: Helpers, ucr: Uringcr, owners: list[Owner], image: Path,
              name: str, *args: str) -> None:
    owner = owner_of(helpers, owners, name, *args)
    ucr.dump(owner, image, label=f"dump-{name}")
    owner.go(helpers.budget.remaining())


def test_image_version_mismatch(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                tmp_path: Path) -> None:
    """An image of another version is refused naming both versions, resealed or not."""
    image = tmp_path / "image"
    _image_of(helpers, ucr, owners, image, "cr_pending", "empty")
    manifest = image / "manifest"
    manifest.write_text(manifest.read_text().replace("uringcr-image 1\n", "uringcr-image 2\n", 1))
    finished = ucr.run("show", image, label="show-damaged")
    assert finished.returncode == UCR_FAILED and "CRC32 mismatch" in finished.output
    # resealed: the version line itself is what the reader refuses
    from_lines = manifest.read_text().splitlines(keepends=True)
    body = "".join(line for line in from_lines if not line.startswith("manifest "))
    manifest.write_text(body + f"manifest crc32=0x{zlib.crc32(body.encode()):08x}\n")
    finished = ucr.run("show", image, label="show-version")
    assert finished.returncode == UCR_FAILED, finished.describe()
    assert "image version '2'" in finished.output and "reads version 1" in finished.output


@pytest.mark.timeout_s(90)  # three dumps and 1800 rounds: a minute under TCG
def test_fuzz_images(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                     record_property: Any) -> None:
    """Random truncations, byte flips and garbage in real images: each refused cleanly
    (or, resealed and in a binary part, read and shown); never a crash or a hang."""
    rounds = 600
    for name, args in (("cr_files", ()), ("cr_pending", ("big",)), ("cr_bufs", ("hugetlb=0",))):
        image = tmp_path / f"image-{name}"
        _image_of(helpers, ucr, owners, image, name, *args)
        t0 = time.monotonic()
        finished = helpers.run("cr_fuzz", f"dir={image}", f"work={tmp_path / ('w-' + name)}",
                               f"rounds={rounds}", "seed=7")
        line = finished.match(FUZZ_LINE)
        total = sum(int(x) for x in line.groups()[1:])
        assert int(line.group(1)) == rounds == total
        # both kinds of damage were met: behind the checksums and at them
        assert int(line.group(2)) > 0 and int(line.group(4)) > 0, line.group(0)
        record_property(f"fuzz_{name}_seconds", round(time.monotonic() - t0, 2))
        record_property(f"fuzz_{name}", line.group(0))


CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture
def own_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A cgroup v2 of its own for an owner (cgroup2 mounted first if it is not)."""
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        subprocess.run(["mount", "-t", "cgroup2", "none", str(CGROUP_ROOT)], check=True)
    group = CGROUP_ROOT / f"uringcr-test-{os.getpid()}-{request.node.name}".replace("[", "-") \
        .replace("]", "")
    group.mkdir()
    try:
        yield group
    finally:
        (group / "cgroup.freeze").write_text("0")
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        group.rmdir()


@pytest.mark.parametrize("freeze", ["sigstop", "cgroup"])
def test_busy_ring(freeze: str, helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                   tmp_path: Path, record_property: Any, request: pytest.FixtureRequest) -> None:
    """Threads submitting while the ring is frozen and dumped: every image is
    consistent, and afterwards not one NOP is lost or doubled."""
    owner = owner_of(helpers, owners, "cr_busy")
    fd = int(owner.one("ring")["fd"])
    if freeze == "cgroup":
        group: Path = request.getfixturevalue("own_cgroup")
        (group / "cgroup.procs").write_text(str(owner.pid))
    retries = 0
    for i in range(3):
        image = tmp_path / f"image{i}"
        _, report = ucr.dump(owner, image, "--freeze", freeze, label=f"dump-{freeze}")
        retries += report["stats"]["edeadlk_retries"]
        ring = the_ring(ucr.show(image), fd)
        mem, kernel = ring["memory"], ring["kernel"]
        assert mem["sq_head"] == kernel["cached_sq_head"]
        # a thread may be frozen between publishing a batch and entering the kernel
        assert mem["sq_tail"] - mem["sq_head"] <= 4, "more SQEs published than one batch"
        assert mem["cq_tail"] == kernel["cached_cq_tail"]
        assert mem["cq_tail"] - mem["cq_head"] <= 4, "more CQEs pending than one batch"
        assert all(c["user_data"] >> 32 < 2 and c["res"] == 0 for c in ring["cqes_pending"])
        if freeze == "cgroup":
            assert (group / "cgroup.freeze").read_text().strip() == "0"
        assert owner.wait_state(False, 5 * helpers.timeout_scale) != "T"
        if i == 0:
            record_stats(record_property, report)
    record_property("edeadlk_retries", retries)
    out = owner.go(helpers.budget.remaining())
    assert "BAD" not in out


def test_held_lock_fails_the_dump_in_time(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                          tmp_path: Path, record_property: Any) -> None:
    """A uring_lock that stays held (another process stalled in io_uring_register()):
    every read answers EDEADLK, the dump fails within --lock-timeout naming the lock."""
    owner = owner_of(helpers, owners, "cr_held")
    lock_ms = int(1000 * helpers.timeout_scale)
    finished, report = ucr.dump(owner, tmp_path / "image", "--lock-timeout", str(lock_ms),
                                want=UCR_FAILED)
    assert "uring_lock stayed held" in finished.output, finished.describe()
    assert report["stats"]["edeadlk_retries"] > 0, report
    record_stats(record_property, report)
    # bounded: the lock timeout plus start-up, never a hang
    assert finished.seconds < lock_ms / 1000 + 30 * helpers.timeout_scale
    assert not (tmp_path / "image").exists()
    assert owner.wait_state(False, 5 * helpers.timeout_scale) != "T"
    owner.go(helpers.budget.remaining())


MUTUAL = re.compile(r"^mutual ret=(-?\d+) took_ms=(\d+) msg=(.*)$", re.M)


def test_mutual_dumps(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                      tmp_path: Path, record_property: Any) -> None:
    """Two ring owners dumping each other at once: each finishes or fails cleanly,
    neither is left stopped, every image written is whole."""
    a = owner_of(helpers, owners, "cr_mutual", label="cr_mutual-a")
    b = owner_of(helpers, owners, "cr_mutual", label="cr_mutual-b")
    dirs = {a.pid: tmp_path / "by-a", b.pid: tmp_path / "by-b"}
    a.send_go(f"{b.pid} {dirs[a.pid]}", close=False)
    b.send_go(f"{a.pid} {dirs[b.pid]}", close=False)
    results = {o.pid: o.wait_output(MUTUAL, helpers.budget.remaining() / 2) for o in (a, b)}
    outcomes = {}
    for owner in (a, b):
        assert owner.wait_state(False, 5 * helpers.timeout_scale) != "T"
        owner.go(helpers.budget.remaining())
        m = results[owner.pid]
        ret, msg = int(m.group(1)), m.group(3)
        image = dirs[owner.pid]
        if ret == 0:
            ucr.show(image)
            outcomes[owner.pid] = "dumped"
        else:
            assert msg and not image.exists(), m.group(0)
            outcomes[owner.pid] = "failed cleanly"
    record_property("outcomes", json.dumps({
        "dumped": sum(v == "dumped" for v in outcomes.values()),
        "failed_cleanly": sum(v != "dumped" for v in outcomes.values())}))


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
        finished = ucr.run("dump", "--pid", str(job), "-o", image, "--json", label="dump-fio")
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
    finally:
        proc.terminate()
        try:
            proc.wait(30 * helpers.timeout_scale)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        data.unlink(missing_ok=True)


@pytest.mark.timeout_s(120)  # 16384 parts: about a minute under TCG
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
    worker limits, the clock, the file allocation range."""
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
    files = owner.one("files")
    assert ring["files"]["slots"] == files["slots"] and ring["files"]["used"] == []
    assert ring["state"]["file_alloc"] == [files["alloc_start"], files["alloc_end"]]
    owner.go(helpers.budget.remaining())


def test_stopped_dumper_lifts_the_freeze(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                         tmp_path: Path) -> None:
    """uringcr stopped while it holds the owner frozen (as two dumpers freezing each
    other would be): its guardian resumes the owner, and uringcr, once continued,
    fails naming why and writes nothing."""
    owner = owner_of(helpers, owners, "cr_pending", "plain")
    image = tmp_path / "image"
    hold = int(3000 * helpers.timeout_scale)
    with (tmp_path / "dumper.out").open("wb") as out:
        dumper = subprocess.Popen([str(ucr.exe), "dump", "--pid", str(owner.pid), "-o",
                                   str(image), "--hold-frozen", str(hold)],
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        assert owner.wait_state(True, 20 * helpers.timeout_scale) == "T"
        dumper.send_signal(signal.SIGSTOP)
        # the guardian lifts the freeze after half a second of a stopped dumper
        state = owner.wait_state(False, 10 * helpers.timeout_scale)
        assert state not in ("T", ""), f"the owner is still {state!r} under a stopped dumper"
        dumper.send_signal(signal.SIGCONT)
        code = dumper.wait(hold / 1000 + 60 * helpers.timeout_scale)
    finally:
        if dumper.poll() is None:
            dumper.kill()
            dumper.wait(10)
    text = (tmp_path / "dumper.out").read_text()
    assert code == UCR_FAILED and "uringcr itself was stopped" in text, text
    assert not image.exists()
    owner.go(helpers.budget.remaining())


def _reseal(image: Path) -> None:
    """New sizes and CRC32s in the manifest, as uringcr writes them (README, "The image")."""
    manifest = image / "manifest"
    lines = []
    for line in manifest.read_text().splitlines():
        if line.startswith("part "):
            name = line.split()[1].removeprefix("name=")
            data = (image / name).read_bytes()
            line = f"part name={name} size={len(data)} crc32=0x{zlib.crc32(data):08x}"
        elif line.startswith("manifest "):
            continue
        lines.append(line + "\n")
    body = "".join(lines)
    manifest.write_text(body + f"manifest crc32=0x{zlib.crc32(body.encode()):08x}\n")


def test_image_counters_wrap(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                             tmp_path: Path) -> None:
    """Counters that wrap past 2^32 in an image: the reader takes them and finds the
    pending entries across the wrap. (The image is a real one with its counters moved
    to just below 2^32: a ring gets there only after 2^32 requests.)"""
    image = tmp_path / "image"
    _image_of(helpers, ucr, owners, image, "cr_pending", "plain")
    text = (image / "ring0.txt").read_text()
    fields = {k: int(v) for line in text.splitlines() if line.startswith(("memory ", "kernel "))
              for k, v in (kv.split("=") for kv in line.split()[1:]) if v.isdigit()}
    base = 2**32 - 2
    moved = {"sq_head": base, "sq_tail": (base + fields["sq_tail"] - fields["sq_head"]) % 2**32,
             "cq_head": base - 1, "cq_tail": (base - 1 + fields["cq_tail"] - fields["cq_head"]) % 2**32}
    moved["cached_sq_head"], moved["cached_cq_tail"] = moved["sq_head"], moved["cq_tail"]
    out = []
    for line in text.splitlines():
        if line.startswith(("memory ", "kernel ")):
            parts = [line.split()[0]]
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                parts.append(f"{k}={moved[k]}" if k in moved else kv)
            line = " ".join(parts)
        out.append(line + "\n")
    (image / "ring0.txt").write_text("".join(out))
    _reseal(image)
    ring = ucr.show(image)["rings"][0]
    assert ring["memory"]["sq_head"] == base and ring["memory"]["sq_tail"] < base
    positions = [s["position"] for s in ring["sqes_pending"]]
    assert positions == [(base + i) % 2**32 for i in range(fields["sq_tail"] - fields["sq_head"])]
    assert [c["position"] for c in ring["cqes_pending"]] == \
        [(base - 1 + i) % 2**32 for i in range(fields["cq_tail"] - fields["cq_head"])]
    assert len(ring["sqes_pending"]) == 3 and len(ring["cqes_pending"]) == 3
