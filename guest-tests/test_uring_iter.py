"""The series' io_uring_buf and io_uring_file BPF iterators against independent views.

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
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import Finished, Helpers, judge
from hugepages import reserved_hugetlb, thp_unavailable
from iter_records import Rec, record_parser
from softassert import SoftAssert

PAGE = 4096
HPAGE = 2 << 20
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
# Empty buffer slots point at io_uring's dummy_ubuf (fdinfo prints it).
DUMMY_UBUF = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF)


# ----------------------------------------------------------------------------
# the helper's output


# "file" lines are the file iterator's, "regfile" what the helper registered.
parse_rec = record_parser("file", "regfile")


@dataclass(kw_only=True)
class HelperRun:
    finished: Finished
    recs: list[Rec] = field(default_factory=list)
    iter_lines: dict[str, list[str]] = field(default_factory=dict)
    fdinfo: list[str] = field(default_factory=list)

    def all(self, rec_kind: str, /, **match: str) -> list[Rec]:
        return [r for r in self.recs
                if r.kind == rec_kind and all(r.kv.get(k) == v for k, v in match.items())]

    def one(self, rec_kind: str, /, **match: str) -> Rec:
        found = self.all(rec_kind, **match)
        if len(found) != 1:
            pytest.fail(f"expected one '{rec_kind} {match}' line, found {len(found)}\n"
                        f"{self.finished.describe()}", pytrace=False)
        return found[0]

    def walk(self, name: str) -> list[Rec]:
        if name not in self.iter_lines:
            pytest.fail(f"no walk {name!r} in the output\n{self.finished.describe()}",
                        pytrace=False)
        return [parse_rec(line) for line in self.iter_lines[name]]


def parse_output(finished: Finished) -> HelperRun:
    """The helper's records; fails (or skips, on its SKIP exit) unless it ran to its end."""
    judge(finished)
    run = HelperRun(finished=finished)
    for line in finished.lines:
        if line.startswith("iter "):
            _, walk, text = line.split(" ", 2)
            run.iter_lines.setdefault(walk, []).append(text)
        elif line.startswith("fdinfo "):
            run.fdinfo.append(line[len("fdinfo "):])
        elif line and not line.startswith(("#", "TAP ", "1..", "ok ", "not ok ")):
            run.recs.append(parse_rec(line))
    return run


def run_helper(helpers: Helpers, name: str, *args: str) -> HelperRun:
    return parse_output(helpers.run(name, *args))


class Checks(SoftAssert):
    """The mismatches of one helper run, failed with its output."""

    def done_with(self, run: HelperRun) -> None:
        self.done(run.finished.describe(tail=400))


# ----------------------------------------------------------------------------
# common to both iterators


def check_walk_shape(checks: Checks, recs: list[Rec], kind: str, walk: str) -> tuple[list[Rec], Rec | None]:
    """Objects of @kind, then exactly one final line; returns (objects, final)."""
    objects = [r for r in recs if r.kind == kind]
    ends = [r for r in recs if r.kind == "end"]
    others = [r.raw for r in recs if r.kind not in (kind, "end")]
    checks.true(f"{walk}: unexpected lines {others}", not others)
    if not checks.eq(f"{walk}: number of final-call lines", len(ends), 1):
        return objects, None
    end = ends[0]
    checks.eq(f"{walk}: final call is for", end.words, [kind])
    checks.true(f"{walk}: the final call's line is not the last one", recs[-1] is end)
    # bpf_seq_read() numbers the objects 0, 1, ...; the final call comes
    # with the number of the last one (0 if there was none)
    checks.eq(f"{walk}: meta->seq_num of the objects", [o.dec("seq") for o in objects],
              list(range(len(objects))))
    checks.eq(f"{walk}: meta->seq_num in the final call", end.dec("seq_num"),
              max(len(objects) - 1, 0))
    return objects, end


def check_ring(checks: Checks, walk: str, end: Rec, objects: list[Rec], ring: Rec) -> None:
    """The walk is of the ring the helper attached to."""
    for key, expected in (("sq_entries", ring.dec("sq_entries")),
                          ("cq_entries", ring.dec("cq_entries")),
                          ("setup_flags", ring.hexv("flags"))):
        checks.eq(f"{walk}: ring->{key}", int(end[key], 16 if key == "setup_flags" else 10),
                  expected)
    pointers = {o.hexv("ring") for o in objects} | {end.hexv("ring")}
    checks.eq(f"{walk}: distinct ring pointers", len(pointers), 1)


def check_same_walk(checks: Checks, run: HelperRun, a: str, b: str) -> None:
    """Walk @b printed exactly what walk @a did."""
    la, lb = run.iter_lines.get(a, []), run.iter_lines.get(b, [])
    if la == lb:
        return
    i = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
    checks.problems.append(f"walk {b} differs from walk {a} from line {i} on "
                           f"({len(lb)} vs {len(la)} lines):\n  {b}: "
                           f"{lb[i] if i < len(lb) else '(end)'}\n  {a}: "
                           f"{la[i] if i < len(la) else '(end)'}")


def counters(run: HelperRun, when: str) -> dict[str, int]:
    rec = run.one("counters", when=when)
    return {k: int(v) for k, v in rec.kv.items() if k != "when"}


def fdinfo_table(checks: Checks, run: HelperRun, header: str) -> dict[int, str]:
    """Slot lines under "UserFiles:" or "UserBufs:" in the ring's fdinfo."""
    rows: dict[int, str] = {}
    inside = False
    count = None
    for line in run.fdinfo:
        if line.startswith(header + ":"):
            inside = True
            count = int(line.split(":", 1)[1])
            continue
        if inside:
            m = re.match(r"^ *(\d+): ?(.*)$", line)
            if not m:
                break
            rows[int(m[1])] = m[2]
    checks.true(f"fdinfo has no {header} line", count is not None)
    if count is not None:
        checks.eq(f"fdinfo {header} rows (missing rows: uring_lock was busy)", len(rows), count)
    return rows


# ----------------------------------------------------------------------------
# buffers


@dataclass(frozen=True)
class Piece:
    folio_start: int
    offset: int
    length: int


def expected_bvecs(addr: int, length: int, folio: int) -> list[Piece]:
    """The bvecs io_uring builds for [addr, addr+length): one per @folio sized unit."""
    pieces, start, end = [], addr, addr + length
    while start < end:
        folio_start = start - start % folio
        stop = min(end, folio_start + folio)
        pieces.append(Piece(folio_start, start - folio_start, stop - start))
        start = stop
    return pieces


def check_buffers(checks: Checks, run: HelperRun, walk: str, *, folio_of: dict[int, int],
                  acct_of: dict[int, int], small_pages: bool) -> None:
    ring = run.one("ring", name="main")
    nr_slots = run.one("table", kind="buf").dec("slots")
    regs = {r.dec("slot"): r for r in run.all("regbuf")}
    checks.eq("regbuf lines", sorted(regs), list(range(nr_slots)))
    used = {s: r for s, r in regs.items() if "addr" in r}
    pages: dict[int, list[Rec]] = {}
    for p in run.all("page"):
        pages.setdefault(p.dec("slot"), []).append(p)

    objects, end = check_walk_shape(checks, run.walk(walk), "buf", walk)
    if end is None:
        return
    check_ring(checks, walk, end, objects, ring)
    checks.eq(f"{walk}: ring->nr_user_bufs", end.dec("nr_user_bufs"), nr_slots)
    checks.eq(f"{walk}: ring->nr_user_files", end.dec("nr_user_files"), 0)

    # empty slots are not shown; the walk goes up the table
    order = [(o.dec("slot"), o.dec("bvec_index")) for o in objects]
    checks.eq(f"{walk}: objects out of order", order, sorted(order))
    checks.eq(f"{walk}: slots shown", sorted({o.dec("slot") for o in objects}), sorted(used))

    bvec_array_off = end.dec("bvec_array_off")
    bio_vec_size = end.dec("bio_vec_size")
    struct_page = end.dec("page_size")
    vmemmap_bases: set[int] = set()
    ubufs: dict[int, int] = {}
    for slot, reg in sorted(used.items()):
        addr, length = reg.hexv("addr"), reg.dec("len")
        bvecs = [o for o in objects if o.dec("slot") == slot]
        folio = folio_of[slot]
        pieces = expected_bvecs(addr, length, folio)
        where = f"{walk} slot {slot}"
        if not checks.eq(f"{where}: bvecs", len(bvecs), len(pieces)):
            continue
        slot_pages = sorted(pages.get(slot, []), key=lambda p: p.hexv("addr"))
        checks.eq(f"{where}: pagemap records", len(slot_pages),
                  (addr + length - 1) // PAGE - addr // PAGE + 1)
        ubuf = bvecs[0].hexv("ubuf")
        ubufs[slot] = ubuf
        covered = 0
        for i, (b, piece) in enumerate(zip(bvecs, pieces)):
            w = f"{where} bvec {i}"
            checks.eq(f"{w}: bvec_index", b.dec("bvec_index"), i)
            checks.eq(f"{w}: ubuf->ubuf (user address)", b.hexv("addr"), addr, hexa=True)
            checks.eq(f"{w}: ubuf->len", b.dec("len"), length)
            checks.eq(f"{w}: ubuf->nr_bvecs", b.dec("nr_bvecs"), len(pieces))
            checks.eq(f"{w}: ubuf->folio_shift", 1 << b.dec("folio_shift"), folio)
            checks.eq(f"{w}: ubuf->refs", b.dec("refs"), 1)
            checks.eq(f"{w}: ubuf->acct_pages", b.dec("acct_pages"), acct_of[slot])
            checks.eq(f"{w}: ubuf pointer", b.hexv("ubuf"), ubuf, hexa=True)
            checks.eq(f"{w}: ring->user_bufs[slot] (the table)", b.hexv("tbl"), ubuf, hexa=True)
            checks.eq(f"{w}: bvec pointer vs &ubuf->bvec[bvec_index]", b.hexv("bvec"),
                      ubuf + bvec_array_off + i * bio_vec_size, hexa=True)
            checks.eq(f"{w}: bv_offset", b.dec("bv_offset"), piece.offset)
            checks.eq(f"{w}: bv_len", b.dec("bv_len"), piece.length)
            pfn = b.hexv("pfn")
            checks.true(f"{w}: pfn is 0", pfn != 0)
            vmemmap_bases.add(b.hexv("bv_page") - pfn * struct_page)
            # every page of the piece: pagemap says which frame backs it
            first = piece.folio_start + piece.offset
            for p in slot_pages:
                page_addr = p.hexv("addr")
                if not first - first % PAGE <= page_addr < first + piece.length:
                    continue
                covered += 1
                want = pfn + (page_addr - piece.folio_start) // PAGE
                checks.eq(f"{w}: pagemap PFN of the page at {page_addr:#x}", p.hexv("pfn"), want,
                          hexa=True)
                if small_pages:
                    flags = p.hexv("kpf")
                    checks.true(f"{where}: page at {page_addr:#x} is part of a compound page "
                                f"(kpageflags {flags:#x}): the one-bvec-per-page model does "
                                f"not apply", not flags & (1 << KPF_COMPOUND_HEAD
                                                           | 1 << KPF_COMPOUND_TAIL))
        checks.eq(f"{where}: pages covered by the bvecs", covered, len(slot_pages))
        checks.eq(f"{where}: sum of bv_len", sum(b.dec("bv_len") for b in bvecs), length)
    checks.eq(f"{walk}: distinct ubuf pointers", len(set(ubufs.values())), len(ubufs))
    # bv_page = vmemmap + pfn: one base for every bvec, or pfn and bv_page disagree
    checks.eq(f"{walk}: bv_page - pfn * sizeof(struct page) differs between bvecs "
              f"{sorted(hex(b) for b in vmemmap_bases)}", len(vmemmap_bases), 1)

    # pinned_vm (VmPin) grew by the pages io_uring accounted
    vmpin = run.one("vmpin")
    checks.eq("VmPin growth in kB vs sum of acct_pages",
              vmpin.dec("after_kb") - vmpin.dec("before_kb"),
              sum(acct_of[s] for s in used) * PAGE // 1024)

    # the ring's fdinfo lists every slot, empty ones as dummy_ubuf
    rows = fdinfo_table(checks, run, "UserBufs")
    for slot in range(nr_slots):
        row = rows.get(slot)
        m = re.match(r"^0x([0-9a-f]+)/(\d+)$", row or "")
        if not checks.true(f"fdinfo UserBufs row {slot}: {row!r}", m is not None):
            continue
        assert m is not None
        got = (int(m[1], 16), int(m[2]))
        expected = (used[slot].hexv("addr"), used[slot].dec("len")) if slot in used else DUMMY_UBUF
        checks.eq(f"fdinfo UserBufs row {slot} (address, length)", got, expected)


def check_buffer_counters(checks: Checks, run: HelperRun, walks: list[str]) -> None:
    """One final call per walk, none for objects."""
    for n, when in enumerate(walks, start=1):
        c = counters(run, when)
        checks.eq(f"after walk {when}: final calls of the buf program", c["buf_stops"], n)


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
# and -EINVAL, even when fd 0 is a ring (include/uapi/linux/bpf.h); an fd that
# is not open is -EBADF; an open fd that is not a ring is -EBADFD.
ATTACH_ERRNO = {
    "ring": 0,
    "no_link_info": errno.EINVAL,
    "zero": errno.EINVAL,
    "zero_is_ring": errno.EINVAL,
    "closed": errno.EBADF,
    "never_opened": errno.EBADF,
    "u32_max": errno.EBADF,
    "devnull": errno.EBADFD,
    "regular": errno.EBADFD,
    "pipe": errno.EBADFD,
    "socket": errno.EBADFD,
    "eventfd": errno.EBADFD,
    "bpf_link": errno.EBADFD,
}


def test_attach_errors(helpers: Helpers) -> None:
    run = run_helper(helpers, "iter_attach")
    check_attach(run).done_with(run)


def check_attach(run: HelperRun) -> Checks:
    # the three ways to get it wrong are told apart
    assert len({errno.EINVAL, errno.EBADF, errno.EBADFD}) == 3
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


def test_pinned_link_keeps_the_ring_and_bpftool_lists_it(helpers: Helpers) -> None:
    pin = bpffs(helpers) / f"uring_iter_pin_{os.getpid()}"
    run = run_helper(helpers, "iter_pin", str(pin))
    pinned = run.one("pinned")
    try:
        # the helper exited: its ring fd is closed, only the pinned link holds the ring
        walk = [parse_rec(line) for line in pin.read_text().splitlines()]
        bufs = [r for r in walk if r.kind == "buf"]
        ends = [r for r in walk if r.kind == "end"]
        checks = Checks()
        checks.eq("buffer objects read through the pin", len(bufs), 1)
        checks.eq("final calls", len(ends), 1)
        if bufs:
            checks.eq("buffer address", bufs[0].hexv("addr"), int(pinned["buf"], 16), hexa=True)
            checks.eq("buffer length", bufs[0].dec("len"), pinned.dec("len"))
        if ends:
            checks.eq("registered buffers", ends[0].dec("nr_user_bufs"), 1)
        shown = helpers.command(["bpftool", "-j", "link", "show", "pinned", str(pin)],
                                label="bpftool-link-show")
        if checks.eq("bpftool exit status", shown.returncode, 0):
            # one JSON line on stdout; libbpf may warn on stderr around it
            info = json.loads(next((line for line in shown.lines if line.startswith("{")),
                                   shown.output))
            checks.eq("bpftool link type", info.get("type"), "iter")
            checks.eq("bpftool target_name", info.get("target_name"), "io_uring_buf")
        else:
            checks.add(shown.describe())
        checks.done_with(run)
    finally:
        pin.unlink(missing_ok=True)
