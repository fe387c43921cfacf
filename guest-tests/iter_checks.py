"""What the iterator tests share: a program's parsed output, the soft-assert
class of their checks, and the checks of walks, rings and buffers that several
tests of test_uring_iter.py make (each test's own checks stay beside it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from helpers import Finished, Helpers, judge
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
