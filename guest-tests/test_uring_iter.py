"""The series' io_uring_reg_buf and io_uring_reg_file BPF iterators against independent views.

The programs c/iter_<scenario>.c set up rings with known registered buffers and
files, attach bpf/uring_iter.bpf.c's iterators and read them; they print what
they registered, what the kernel says elsewhere and the iterator output (see
the C files). Here every field the iterator shows is checked:

* buffers: slot, user address and length against what was registered and the
  ring's fdinfo; every bvec against a model of the buffer (one bvec per page,
  or per 2M folio when io_uring coalesced huge pages); the PFN of every page
  of every buffer against /proc/self/pagemap; bv_page against the PFN;
  acct_pages against VmPin; refs; the ubuf and bvec pointers against the
  ring's own table;
* files: slot against the registration and the ring's fdinfo; inode number,
  device, mode, flags, position and name against fstat()/fcntl() of the fds
  that were registered, or of an ordinary open() for the direct descriptor,
  which has no fd in the task; the reference count; sockets' type and
  family; the struct file pointer against the ring's table;
* every walk: empty slots are not shown, exactly one final call with a NULL
  object at the end, after all objects (seq_num = objects shown), the same
  output when read 7 bytes at a time, and the right ring (its pointer,
  sizes and setup flags; another ring with things registered is never shown).

test_read_through_io_uring reads the iterators with IORING_OP_READ (issue 4
item 3) and test_attach_errors checks the errno of each kind of bad ring fd.
All mismatches of a test are collected (SoftAssert) and reported together.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Helpers
from hugepages import reserved_hugetlb, thp_unavailable
from iter_checks import (Checks, HPAGE, HelperRun, PAGE, check_buffer_counters, check_buffers, check_ring, check_same_walk, check_walk_shape, counters, fdinfo_table, parse_rec, run_helper)

def test_buffer_iterator_small_pages(helpers: Helpers) -> None:
    run = run_helper(helpers, "iter_bufs")
    check_small_pages(run).done_with(run)


def check_small_pages(run: HelperRun) -> Checks:
    checks = Checks()
    slots = {r.dec("slot"): r for r in run.all("regbuf") if "addr" in r}
    pages_of = {s: len(run.all("page", slot=str(s))) for s in slots}
    check_buffers(checks, run, "buf", folio_of={s: PAGE for s in slots}, acct_of=pages_of,
                  small_pages=True)
    check_same_walk(checks, run, "buf", "buf-chunked")
    check_same_walk(checks, run, "buf", "buf-unmapped")
    check_buffer_counters(checks, run, ["buf", "buf-chunked"])
    checks.eq("final calls after the munmap walk", counters(run, "buf-unmapped")["buf_stops"], 3)
    # slots 0 and 6 share a page
    by_slot = {o.dec("slot"): o for o in run.walk("buf") if o.kind == "buf"}
    if 0 in by_slot and 6 in by_slot:
        checks.eq("slots 0 and 6 share page 0", by_slot[6].hexv("pfn"), by_slot[0].hexv("pfn"),
                  hexa=True)
    # the buffer-less file table of the same ring: the final call only
    objects, end = check_walk_shape(checks, run.walk("file"), "file", "file")
    if end is not None:
        checks.eq("file walk: ring->nr_user_files", end.dec("nr_user_files"), 0)
        checks.eq("file walk: same ring as the buf walk", end.hexv("ring"),
                  run.walk("buf")[-1].hexv("ring"), hexa=True)
    checks.eq("file walk: final calls", counters(run, "file")["file_stops"], 1)
    checks.eq("file walk: objects", counters(run, "file")["file_objects"], 0)
    return checks


@pytest.fixture
def huge_backing(request: pytest.FixtureRequest) -> Iterator[str]:
    kind: str = request.param
    if kind == "thp":
        why = thp_unavailable()
        if why:
            pytest.skip(why)
        yield kind
        return
    with reserved_hugetlb(2) as why_not:
        if why_not:
            pytest.skip(why_not)
        yield kind


@pytest.mark.parametrize("huge_backing", ["hugetlb", "thp"], indirect=True)
def test_buffer_iterator_huge(helpers: Helpers, huge_backing: str) -> None:
    run = run_helper(helpers, "iter_huge", huge_backing)
    check_huge(run).done_with(run)


def check_huge(run: HelperRun) -> Checks:
    checks = Checks()
    # slot 0 spans two 2M folios: coalesced, one bvec per folio, 512 pages
    # accounted per folio; slot 1 is one page of the first folio: not
    # coalesced, and nothing accounted as the folio already is.
    check_buffers(checks, run, "buf", folio_of={0: HPAGE, 1: PAGE},
                  acct_of={0: 2 * HPAGE // PAGE, 1: 0}, small_pages=False)
    check_same_walk(checks, run, "buf", "buf-unmapped")
    check_buffer_counters(checks, run, ["buf", "buf-unmapped"])
    bvecs = [o for o in run.walk("buf") if o.kind == "buf"]
    if len(bvecs) == 3:
        # slot 1's page is the first folio's head page
        checks.eq("slot 1 pfn vs the first folio of slot 0", bvecs[2].hexv("pfn"),
                  bvecs[0].hexv("pfn"), hexa=True)
    return checks


# ----------------------------------------------------------------------------
# files

# f_mode's FMODE_READ and FMODE_WRITE for each O_ACCMODE
FMODE_OF_ACCMODE = {os.O_RDONLY: 0x1, os.O_WRONLY: 0x2, os.O_RDWR: 0x3}
# (sock->type, sk->sk_family) of the sockets the helper registers
SOCKET_OF_KIND = {"unix": (int(socket.SOCK_STREAM), int(socket.AF_UNIX)),
                  "udp": (int(socket.SOCK_DGRAM), int(socket.AF_INET))}


def kernel_dev(major: int, minor: int) -> int:
    """dev_t as the kernel keeps it (MKDEV), from what stat() decoded."""
    return major << 20 | minor


def test_file_iterator(helpers: Helpers) -> None:
    run = run_helper(helpers, "iter_files")
    check_files(run).done_with(run)


def check_files(run: HelperRun) -> Checks:
    checks = Checks()
    ring = run.one("ring", name="main")
    nr_slots = run.one("table", kind="file").dec("slots")
    regs = {r.dec("slot"): r for r in run.all("regfile")}
    checks.eq("regfile lines", sorted(regs), list(range(nr_slots)))
    used = {s: r for s, r in regs.items() if "ino" in r}

    objects, end = check_walk_shape(checks, run.walk("file"), "file", "file")
    if end is None:
        return checks
    check_ring(checks, "file", end, objects, ring)
    checks.eq("file: ring->nr_user_files", end.dec("nr_user_files"), nr_slots)
    checks.eq("file: ring->nr_user_bufs", end.dec("nr_user_bufs"), 0)
    slots = [o.dec("slot") for o in objects]
    checks.eq("file: slots shown, in order (empty ones never)", slots, sorted(used))

    rows = fdinfo_table(checks, run, "UserFiles")
    by_slot = {o.dec("slot"): o for o in objects}
    # the same fd registered twice is one struct file with two references
    registered_as: dict[str, list[int]] = {}
    for slot, reg in used.items():
        registered_as.setdefault(reg["fd"] if reg["kind"] != "direct" else f"direct{slot}",
                                 []).append(slot)
    for slot, reg in sorted(used.items()):
        o = by_slot.get(slot)
        w = f"file slot {slot} ({reg['kind']})"
        if o is None:
            continue
        file_ptr = o.hexv("file")
        checks.eq(f"{w}: ring->file_table.files[slot] without its flag bits", o.hexv("tbl") & ~3,
                  file_ptr, hexa=True)
        checks.eq(f"{w}: i_ino vs fstat st_ino", o.dec("ino"), reg.dec("ino"))
        checks.eq(f"{w}: i_sb->s_dev vs fstat st_dev", o.hexv("dev"),
                  kernel_dev(reg.dec("dev_major"), reg.dec("dev_minor")), hexa=True)
        checks.eq(f"{w}: i_rdev vs fstat st_rdev", o.hexv("rdev"),
                  kernel_dev(reg.dec("rdev_major"), reg.dec("rdev_minor")), hexa=True)
        checks.eq(f"{w}: i_mode vs fstat st_mode", oct(o.hexv("mode")), oct(reg.octv("mode")))
        checks.eq(f"{w}: f_flags vs fcntl(F_GETFL)", hex(o.hexv("f_flags")), hex(reg.hexv("f_flags")))
        checks.eq(f"{w}: f_mode read/write bits", o.hexv("f_mode") & 3,
                  FMODE_OF_ACCMODE[reg.hexv("f_flags") & os.O_ACCMODE])
        checks.eq(f"{w}: f_pos vs lseek()", o.dec("pos"), reg.dec("pos"))
        sharing = registered_as[reg["fd"] if reg["kind"] != "direct" else f"direct{slot}"]
        checks.eq(f"{w}: f_count (the table holds the only references)", o.dec("count"),
                  len(sharing))
        checks.eq(f"{w}: (sock->type, sk_family)", (o.dec("sk_type"), o.dec("sk_family")),
                  SOCKET_OF_KIND.get(reg["kind"], (-1, -1)))
        checks.eq(f"{w}: dentry name vs the ring's fdinfo", o["name"], rows.get(slot))
        if reg["kind"] in ("regular", "chardev", "direct"):
            checks.eq(f"{w}: dentry name vs the file's name", o["name"], reg["name"])
    # slots share a struct file exactly when the same fd was registered
    pointers: dict[int, set[str]] = {}
    for slot, o in by_slot.items():
        registered = used.get(slot)
        if registered is not None:
            pointers.setdefault(o.hexv("file"), set()).add(
                registered["fd"] if registered["kind"] != "direct" else f"direct{slot}")
    checks.true(f"file: one struct file shown for two different registrations: {pointers}",
                all(len(v) == 1 for v in pointers.values()))
    checks.eq("file: distinct struct files", len(pointers), len(registered_as))
    for slot in range(nr_slots):
        if slot not in used:
            checks.eq(f"fdinfo UserFiles row {slot} (empty slot)", rows.get(slot), "<none>")

    # the direct descriptor has no fd in the task
    direct = [r for r in used.values() if r["kind"] == "direct"]
    checks.eq("direct descriptors registered", len(direct), 1)
    for d in direct:
        in_task = [t.raw for t in run.all("taskfd")
                   if t["ino"] == d["ino"] and t["dev_minor"] == d["dev_minor"]
                   and t["dev_major"] == d["dev_major"]]
        checks.eq("fds of the task that are the direct descriptor's file", in_task, [])

    check_same_walk(checks, run, "file", "file-chunked")
    checks.eq("final calls after walk file", counters(run, "file")["file_stops"], 1)
    checks.eq("final calls after walk file-chunked", counters(run, "file-chunked")["file_stops"], 2)
    # the file-less buffer table: the final call only
    _, bend = check_walk_shape(checks, run.walk("buf"), "buf", "buf")
    if bend is not None:
        checks.eq("buf walk: ring->nr_user_bufs", bend.dec("nr_user_bufs"), 0)
        checks.eq("buf walk: same ring as the file walk", bend.hexv("ring"), end.hexv("ring"),
                  hexa=True)
    checks.eq("buf walk: objects", counters(run, "buf")["buf_objects"], 0)
    return checks


# ----------------------------------------------------------------------------
# item 3: reading the iterators through io_uring

EDEADLK = errno.EDEADLK
# (case, expect): "edeadlk": the first CQE res is -EDEADLK; "data": the read
# ends at EOF with exactly what read(2) of a fresh iterator gives.
READ_CASES = {
    # O_NONBLOCK: issued inline under this ring's uring_lock
    "self-inline": "edeadlk",
    "self-inline-again": "edeadlk",
    # ... and the position did not move: read(2) then gives the whole walk
    "read-after-edeadlk": "data",
    # inline under another ring's lock: ring a's is free
    "other-inline": "data",
    # no O_NONBLOCK: punted to io-wq, which holds no uring_lock
    "self-iowq": "data",
    # SQPOLL: the SQ thread issues with the ring's uring_lock held
    "sqpoll-inline": "edeadlk",
    "sqpoll-iowq": "data",
}


@pytest.mark.timeout_s(180)
def test_read_through_io_uring(helpers: Helpers) -> None:
    run = run_helper(helpers, "iter_edeadlk")
    check_reads(run).done_with(run)


def check_reads(run: HelperRun) -> Checks:
    checks = Checks()
    for it in ("buf", "file"):
        for case, expect in READ_CASES.items():
            found = run.all("case", name=case, iter=it)
            if not checks.eq(f"{case} of the {it} iterator: result lines", len(found), 1):
                continue
            c = found[0]
            w = f"{case} ({it} iterator, ring {c['ring']}, O_NONBLOCK={c['nonblock']})"
            if expect == "edeadlk":
                checks.eq(f"{w}: CQE res", c.dec("res"), -EDEADLK)
            else:
                checks.eq(f"{w}: status (0: read to EOF)", c.dec("status"), 0)
                checks.eq(f"{w}: content equals read(2) of the iterator", c.dec("same"), 1)
                if case == "other-inline":
                    checks.eq(f"{w}: busy retries (another ring's lock is never held)",
                              c.dec("busy"), 0)
    checks.true("the SQPOLL ring has IORING_SETUP_SQPOLL",
                run.one("ring", name="sqpoll").hexv("flags") & 0x2 != 0)
    return checks


# ----------------------------------------------------------------------------
# item 3: attach errors

# Documented by the series: ring_fd 0 (or no link info at all) is "no ring"
# and -EBADF, as the map iterator's map_fd 0, even when fd 0 is a ring
# (include/uapi/linux/bpf.h); an fd that is not open is -EBADF; an open fd that
# is not a ring is -EOPNOTSUPP, as io_uring_register_get_file() reports it.
ATTACH_ERRNO = {
    "ring": 0,
    "no_link_info": errno.EBADF,
    "zero": errno.EBADF,
    "zero_is_ring": errno.EBADF,
    "closed": errno.EBADF,
    "never_opened": errno.EBADF,
    "u32_max": errno.EBADF,
    "devnull": errno.EOPNOTSUPP,
    "regular": errno.EOPNOTSUPP,
    "pipe": errno.EOPNOTSUPP,
    "socket": errno.EOPNOTSUPP,
    "eventfd": errno.EOPNOTSUPP,
    "bpf_link": errno.EOPNOTSUPP,
}


def test_attach_errors(helpers: Helpers) -> None:
    run = run_helper(helpers, "iter_attach")
    check_attach(run).done_with(run)


def check_attach(run: HelperRun) -> Checks:
    # a missing or bad fd and a file that is not a ring are told apart
    assert errno.EBADF != errno.EOPNOTSUPP
    checks = Checks()
    for it in ("buf", "file"):
        for case, want in ATTACH_ERRNO.items():
            found = run.all("attach", case=case, iter=it)
            if checks.eq(f"attach {case} ({it}): result lines", len(found), 1):
                got = found[0].dec("errno")
                checks.eq(f"attach the {it} iterator to {case} (fd {found[0]['fd']}): errno "
                          f"{errno.errorcode.get(got, got)} vs {errno.errorcode.get(want, want)}",
                          got, want)
    return checks


# ----------------------------------------------------------------------------
# a pinned link: the ring outlives every fd, and the distribution's bpftool


def bpffs(helpers: Helpers) -> Path:
    path = Path("/sys/fs/bpf")
    if not os.path.ismount(path):
        mounted = helpers.command(["mount", "-t", "bpf", "bpf", str(path)])
        if mounted.returncode != 0:
            pytest.fail(f"cannot mount bpffs: {mounted.describe()}", pytrace=False)
    return path


def test_pinned_link_outlives_its_ring(helpers: Helpers) -> None:
    """A link pinned in bpffs does not keep its ring: the helper read the pin (one
    buffer, the final call) and exited, its ring went with it, and cat(1) of the pin
    now gives an empty walk. bpftool still lists the link."""
    pin = bpffs(helpers) / f"uring_iter_pin_{os.getpid()}"
    run = run_helper(helpers, "iter_pin", str(pin))
    pinned = run.one("pinned")
    try:
        checks = Checks()
        checks.eq("lines read through the pin while the ring was there",
                  pinned.dec("walk_lines"), 2)
        catted = helpers.command(["cat", str(pin)], label="cat-pin")
        checks.eq("cat exit status", catted.returncode, 0)
        checks.eq("the walk after the ring went", catted.output, "")
        shown = helpers.command(["bpftool", "-j", "link", "show", "pinned", str(pin)],
                                label="bpftool-link-show")
        if checks.eq("bpftool exit status", shown.returncode, 0):
            # one JSON line on stdout; libbpf may warn on stderr around it
            info = json.loads(next((line for line in shown.lines if line.startswith("{")),
                                   shown.output))
            checks.eq("bpftool link type", info.get("type"), "iter")
            checks.eq("bpftool target_name", info.get("target_name"), "io_uring_reg_buf")
        else:
            checks.add(shown.describe())
        checks.done_with(run)
    finally:
        pin.unlink(missing_ok=True)
