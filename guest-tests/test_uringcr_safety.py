"""Checkpoint scenarios, what a dump refuses and how it treats the owner: every
refusal by name, missing rights, a dumper killed or stopped while it holds the
freeze, a busy ring under both freezers, a held uring_lock, two owners dumping
each other. The owner must always end as it was and its ring still work.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from uringcr_run import (UCR_FAILED, UCR_REFUSED, Owner, Uringcr, proc_state, record_restore,
                         record_stats, owner_of, the_ring)


REFUSALS = ["attach-wq", "attach-many", "nommap", "eventfd", "pbuf", "pers64", "regtwice",
            "longpath", "socket",
            "pipe", "unlinked", "unmapped", "shared", "shared-three", "pages", "overflow", "skip"]

# kinds that share a refusal name with another: what their sentence must say
# (the buffer refusals after every order of the rings was tried: order.c)
NO_ORDER = "no other order of the image's rings restores it either"
WHY = {"shared": ("rings outside the image",),
       "shared-three": ("sharing with two rings", NO_ORDER),
       "pages": ("one process cannot map both there at once", NO_ORDER),
       "attach-wq": ("are outside it",),
       "attach-many": ("comes after it in fd order",
                       "other orders were tried only up to 7 rings and 4194304 buffers planned")}


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
    for part in WHY.get(kind, ()):
        assert any(part in r["why"] for r in report["refusals"] if r["name"] == name), report
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
    # an image of a ring taken mid-batch restores equal, its unsubmitted SQEs included
    record_restore(record_property, ucr.verify(tmp_path / "image0"))
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
            ucr.verify(image, label=f"verify-{owner.pid}")
            outcomes[owner.pid] = "dumped"
        else:
            assert msg and not image.exists(), m.group(0)
            outcomes[owner.pid] = "failed cleanly"
    record_property("outcomes", json.dumps({
        "dumped": sum(v == "dumped" for v in outcomes.values()),
        "failed_cleanly": sum(v != "dumped" for v in outcomes.values())}))


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
