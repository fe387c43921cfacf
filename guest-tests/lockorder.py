"""Reading the output of c/lockorder_*.c and judging it (test_lock_ordering.py).

Pure functions over the helper's text, so the host can check them
(selftests/test_lockorder_checks.py). The helper reports facts: per
scenario how many reads gave the whole walk ("ok"), failed with EDEADLK
("edeadlk") or did anything else ("failed"), "check" lines with values
observed, and for some scenarios the walks themselves ("walk" + "iter"
lines), which are judged here:

* busy: every walk is one read(2) holding ->uring_lock throughout, taken
  while other threads switch the tables between known sets; it must show
  exactly one set whole (or, around a re-registration, no table), and one
  that was installed within the read's window of changes (not stale);
* lifetime: walks across a sparse update, each against what the table held
  at each point of the walk; across an unregister and a resize, which fail
  with -ESTALE; across a closed ring, which end where the ring went.

Outcome counts are {"ok", "edeadlk", "failed"} (plus "refused" where a
refusal is the expected outcome), as recorded in the JUnit properties.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from helpers import KTAP_RESULT
from iter_records import Rec, record_parser

EDEADLK = errno.EDEADLK
ESTALE = errno.ESTALE
PAGE = 4096
# io_fixed_file.file_ptr carries FFS_NOWAIT and FFS_ISREG in its low bits
FFS_FLAGS = 0x3


# ----------------------------------------------------------------------------
# records

# "file" lines are the file iterator's, "genfile" the file sets busy switches between.
parse_rec = record_parser("file", "genfile")


@dataclass(kw_only=True)
class Counts:
    ok: int = 0
    edeadlk: int = 0
    failed: int = 0
    refused: int | None = None
    rounds: int = 0
    ms: int = 0

    def add(self, other: Counts) -> None:
        self.ok += other.ok
        self.edeadlk += other.edeadlk
        self.failed += other.failed
        if other.refused is not None:
            self.refused = (self.refused or 0) + other.refused

    def as_dict(self) -> dict[str, int]:
        d = {"ok": self.ok, "edeadlk": self.edeadlk, "failed": self.failed}
        if self.refused is not None:
            d["refused"] = self.refused
        return d


@dataclass(kw_only=True)
class Walk:
    scenario: str
    name: str
    res: int
    busy: int
    kv: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def recs(self) -> list[Rec]:
        return [parse_rec(line) for line in self.lines]


@dataclass(kw_only=True)
class Output:
    """Everything the helper printed, by kind."""

    lines: list[str]
    result: re.Match[str] | None = None
    outcomes: dict[str, Counts] = field(default_factory=dict)
    timings: dict[str, Rec] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    checks: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    walks: dict[tuple[str, str], Walk] = field(default_factory=dict)
    recs: list[Rec] = field(default_factory=list)   # everything else, e.g. genbuf
    diags: list[str] = field(default_factory=list)

    def check_values(self, scenario: str, key: str) -> list[str]:
        return [v for k, v in self.checks.get(scenario, []) if k == key]

    def all(self, kind: str) -> list[Rec]:
        return [r for r in self.recs if r.kind == kind]


def parse_output(text: str) -> Output:
    out = Output(lines=text.splitlines())
    for line in out.lines:
        if m := KTAP_RESULT.match(line):
            out.result = m
            continue
        if line.startswith("# "):
            out.diags.append(line[2:])
            continue
        if not line or line.startswith(("TAP ", "1..", "step ")):
            continue
        if line.startswith("iter "):
            _, key, body = (line.split(" ", 2) + [""])[:3]
            scenario, _, name = key.partition("/")
            walk = out.walks.get((scenario, name))
            if walk is not None:
                walk.lines.append(body)
            else:
                out.bad.append(f"text of an unannounced walk: {line}")
            continue
        rec = parse_rec(line)
        if rec.kind == "outcome":
            refused = rec.kv.get("refused")
            out.outcomes[rec.get("scenario")] = Counts(
                ok=rec.dec("ok"), edeadlk=rec.dec("edeadlk"), failed=rec.dec("failed"),
                refused=int(refused) if refused is not None else None,
                rounds=rec.dec("rounds"), ms=rec.dec("ms"))
        elif rec.kind == "timing":
            out.timings[rec.get("scenario")] = rec
        elif rec.kind == "bad":
            out.bad.append(line[len("bad "):])
        elif rec.kind == "check":
            scenario = rec.get("scenario")
            for key, value in rec.kv.items():
                if key != "scenario":
                    out.checks.setdefault(scenario, []).append((key, value))
        elif rec.kind == "walk":
            scenario, name = rec.get("scenario"), rec.get("name")
            extra = {k: v for k, v in rec.kv.items() if k not in ("scenario", "name", "res", "busy")}
            out.walks[(scenario, name)] = Walk(scenario=scenario, name=name, res=rec.dec("res"),
                                               busy=rec.dec("busy"), kv=extra)
        else:
            out.recs.append(rec)
    return out


# ----------------------------------------------------------------------------
# the shape every walk has


def walk_shape(recs: list[Rec], kind: str) -> tuple[list[Rec], Rec | None, list[str]]:
    """Objects of @kind, then exactly one final call, last: (objects, final, problems).

    The final call comes with meta->seq_num of the last object (0 if none)."""
    problems: list[str] = []
    objects = [r for r in recs if r.kind == kind]
    ends = [r for r in recs if r.kind == "end"]
    others = [r.raw for r in recs if r.kind not in (kind, "end")]
    if others:
        problems.append(f"lines that are neither {kind} objects nor the final call: {others[:3]}")
    if len(ends) != 1:
        problems.append(f"{len(ends)} final calls, expected exactly one")
        return objects, None, problems
    end = ends[0]
    if recs[-1] is not end:
        problems.append("the final call is not the last line")
    if end.words != [kind]:
        problems.append(f"final call for {end.words}, expected [{kind!r}]")
    seqs = [r.dec("seq") for r in objects]
    if seqs != list(range(len(objects))):
        problems.append(f"meta->seq_num of the objects {seqs}, expected 0..{len(objects) - 1}")
    want = max(len(objects) - 1, 0)
    if end.dec("seq_num") != want:
        problems.append(f"meta->seq_num {end.dec('seq_num')} in the final call after "
                        f"{len(objects)} objects, expected {want}")
    rings = {r.get("ring") for r in objects} | {end.get("ring")}
    if len(rings) != 1:
        problems.append(f"objects of {len(rings)} different rings")
    return objects, end, problems


def buf_slots(objects: list[Rec]) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """Slot -> (user address, length) from one walk's buffer objects, which must
    list each buffer's bio_vecs whole, in order, slots increasing."""
    problems: list[str] = []
    slots: dict[int, tuple[int, int]] = {}
    groups: list[list[Rec]] = []
    for o in objects:
        if groups and groups[-1][0].dec("slot") == o.dec("slot"):
            groups[-1].append(o)
        else:
            groups.append([o])
    order = [g[0].dec("slot") for g in groups]
    if order != sorted(set(order)):
        problems.append(f"slots in the order {order}, expected strictly increasing")
    for g in groups:
        slot = g[0].dec("slot")
        addr, length, nr = g[0].hexv("addr"), g[0].dec("len"), g[0].dec("nr_bvecs")
        if [o.dec("bvec_index") for o in g] != list(range(nr)):
            problems.append(f"slot {slot}: bvec_index {[o.dec('bvec_index') for o in g]} "
                            f"of {nr} bio_vecs")
        if any((o.hexv("addr"), o.dec("len"), o.dec("nr_bvecs")) != (addr, length, nr) for o in g):
            problems.append(f"slot {slot}: the buffer changed between its bio_vecs (torn)")
        if sum(o.dec("bv_len") for o in g) != length:
            problems.append(f"slot {slot}: bio_vecs cover {sum(o.dec('bv_len') for o in g)} "
                            f"bytes of a {length}-byte buffer")
        if g[0].dec("bv_offset") != addr % PAGE:
            problems.append(f"slot {slot}: first bv_offset {g[0].dec('bv_offset')} for a buffer "
                            f"at offset {addr % PAGE} in its page")
        if any(o.hexv("tbl") != o.hexv("ubuf") for o in g):
            problems.append(f"slot {slot}: the table entry is not the buffer shown")
        slots[slot] = (addr, length)
    return slots, problems


def file_slots(objects: list[Rec]) -> tuple[dict[int, str], list[str]]:
    """Slot -> dentry name from one walk's file objects (slots increasing)."""
    problems: list[str] = []
    order = [o.dec("slot") for o in objects]
    if order != sorted(set(order)):
        problems.append(f"slots in the order {order}, expected strictly increasing")
    for o in objects:
        if o.hexv("tbl") & ~FFS_FLAGS != o.hexv("file"):
            problems.append(f"slot {o.dec('slot')}: the table entry {o.get('tbl')} is not the "
                            f"file shown {o.get('file')}")
    return {o.dec("slot"): o.get("name") for o in objects}, problems


# ----------------------------------------------------------------------------
# busy: consistent and current snapshots


@dataclass(kw_only=True)
class BusySets:
    """What the updaters switch between: set -> slot -> value (None: empty)."""

    nsets: int
    nslots: int
    rereg_every: int
    buf: dict[int, dict[int, tuple[int, int] | None]]
    file: dict[int, dict[int, str | None]]

    def table(self, kind: str, s: int) -> dict[int, object]:
        sets: dict[int, dict[int, object]] = self.buf if kind == "buf" else self.file  # type: ignore[assignment]
        return {slot: v for slot, v in sets[s].items() if v is not None}

    def identify(self, kind: str, shown: dict[int, object]) -> list[int]:
        return [s for s in range(self.nsets) if self.table(kind, s) == shown]

    def visible(self, lo: int, hi: int) -> tuple[set[int], bool]:
        """Sets a read between change lo (done before it) and change hi (started
        by its end) may show; and whether "no table" may be seen (a
        re-registration among the changes lo+1..hi)."""
        if hi < lo:
            return set(), False
        sets = {n % self.nsets for n in range(lo, min(hi, lo + self.nsets) + 1)}
        empty = any(n % self.rereg_every == 0 for n in range(lo + 1, hi + 1))
        return sets, empty


def busy_sets(out: Output) -> BusySets:
    head = out.all("busy")
    if len(head) != 1:
        raise ValueError("no 'busy sets=..' line")
    h = head[0]
    buf: dict[int, dict[int, tuple[int, int] | None]] = {}
    file: dict[int, dict[int, str | None]] = {}
    for r in out.all("genbuf"):
        buf.setdefault(r.dec("set"), {})[r.dec("slot")] = (
            None if "empty" in r.words else (r.hexv("addr"), r.dec("len")))
    for r in out.all("genfile"):
        file.setdefault(r.dec("set"), {})[r.dec("slot")] = (
            None if "empty" in r.words else r.get("name"))
    return BusySets(nsets=h.dec("sets"), nslots=h.dec("slots"), rereg_every=h.dec("rereg_every"),
                    buf=buf, file=file)


def check_snapshot(walk: Walk, sets: BusySets) -> list[str]:
    """Problems of one successful busy walk (empty: a consistent, current snapshot)."""
    kind = walk.kv.get("it", "")
    objects, end, problems = walk_shape(walk.recs, kind)
    if end is None:
        return problems
    if kind == "buf":
        shown: dict[int, object] = dict(buf_slots(objects)[0])
        problems += buf_slots(objects)[1]
        nr = end.dec("nr_user_bufs")
    else:
        shown = dict(file_slots(objects)[0])
        problems += file_slots(objects)[1]
        nr = end.dec("nr_user_files")
    lo, hi = int(walk.kv["lo"]), int(walk.kv["hi"])
    visible, empty_ok = sets.visible(lo, hi)
    if not shown:
        if nr != 0:
            problems.append(f"no {kind} objects, but the ring has {nr} slots: every set fills some")
        elif not empty_ok:
            problems.append(f"no table, but no re-registration among changes {lo + 1}..{hi}")
        return problems
    if nr != sets.nslots:
        problems.append(f"nr_user_{kind}s={nr}, every set has {sets.nslots} slots")
    matches = sets.identify(kind, shown)
    if not matches:
        problems.append(f"the {kind} slots shown {sorted(shown)} are no set the updater installs "
                        f"(a torn or mixed table): {shown}")
    elif not set(matches) & visible:
        problems.append(f"shows set {matches[0]}, but only changes {lo}..{hi} (sets "
                        f"{sorted(visible)}) could be seen: stale")
    return problems


def judge_busy(out: Output) -> tuple[Counts, list[str], dict[str, int]]:
    """Counts, problems and a summary of the busy scenario's walks."""
    counts = Counts()
    problems: list[str] = []
    sets = busy_sets(out)
    raced = empty = 0
    for (scenario, name), walk in sorted(out.walks.items(), key=lambda kv: _walk_order(kv[0][1])):
        if scenario != "busy":
            continue
        counts.edeadlk += walk.busy + int(walk.kv.get("eof_busy", "0"))
        what = f"busy walk {name} ({walk.kv.get('it')})"
        if walk.res < 0:
            counts.failed += 1
            why = "EDEADLK on every attempt" if walk.res == -EDEADLK else f"error {walk.res}"
            problems.append(f"{what}: {why}")
            continue
        walk_problems = check_snapshot(walk, sets)
        if walk.kv.get("eof") != "0":
            walk_problems.append(f"the read after the walk gave {walk.kv.get('eof')}, expected 0 "
                                 "(the whole walk in one read, then the end)")
        if walk_problems:
            counts.failed += 1
            problems += [f"{what}: {p}" for p in walk_problems]
        else:
            counts.ok += 1
            if int(walk.kv["hi"]) > int(walk.kv["lo"]):
                raced += 1
            if not any(r.kind == walk.kv.get("it") for r in walk.recs):
                empty += 1
    return counts, problems, {"raced": raced, "no_table": empty}


def _walk_order(name: str) -> int:
    return int(name[1:]) if name[1:].isdigit() else 0


# ----------------------------------------------------------------------------
# lifetime: what each walk must show


@dataclass(frozen=True, kw_only=True)
class Expect:
    """A walk: its file slots and names (or buffer slots), the table size at its end."""

    kind: str
    nr: int
    files: tuple[tuple[int, str], ...] = ()
    bufs: tuple[int, ...] = ()


# Slots ahead of the walk's position are seen in their state at the time the
# walk gets there; slots behind it are not seen again. Each walk below read
# its first object, then the table changed, then it went on (c/lockorder_lifetime.c).
LIFETIME_FILE_WALKS = {
    # 0 a0 | 1 a1 2 a2 3 a3 . 5 a5 . 7 a7: 1 and 2 cleared, 5 replaced, 6 filled
    "update": Expect(kind="file", nr=8, files=(
        (0, "memfd:lt-a0"), (3, "memfd:lt-a3"), (5, "memfd:lt-b5"), (6, "memfd:lt-b6"),
        (7, "memfd:lt-a7"))),
}
# The table unregistered after the walk's first object and another one
# registered (64 slots, then 4): the walk must fail rather than go on in it.
LIFETIME_FILE_STALE = ("grow", "shrink")


def _stale(out: Output, scenario: str, name: str) -> list[str]:
    """A walk whose table was unregistered after its first object, maybe with
    another registered since: -ESTALE, not a walk that goes on in the new
    table or ends as if the old one had been shown whole."""
    walk = out.walks.get((scenario, name))
    if walk is None:
        return [f"{scenario}: walk {name} missing"]
    if walk.res != -ESTALE:
        got = f"{len(walk.lines)} lines" if walk.res >= 0 else f"error {walk.res}"
        return [f"{scenario}: walk {name} gave {got}, expected -ESTALE: the table it "
                "began in was unregistered"]
    return []


def _cut_short(out: Output, scenario: str, name: str, ref: str, objects: int) -> list[str]:
    """A walk whose ring went after its first @objects objects (those of @ref):
    it ends there, with no final call, as there is no ring left to show."""
    walk, reference = out.walks.get((scenario, name)), out.walks.get((scenario, ref))
    if walk is None or reference is None:
        return [f"{scenario}: walk {name} or {ref} missing"]
    if walk.res < 0:
        return [f"{scenario}: walk {name} failed with {walk.res}"]
    if len(reference.lines) <= objects:
        return [f"{scenario}: walk {ref} has only {len(reference.lines)} lines"]
    if walk.lines != reference.lines[:objects]:
        return [f"{scenario}: walk {name} after the ring went is {walk.lines[:3]} "
                f"({len(walk.lines)} lines), expected the first {objects} of {ref} and no "
                "final call"]
    return []


def _expect_checks(out: Output, scenario: str, expected: dict[str, str]) -> list[str]:
    problems = []
    for key, want in expected.items():
        got = out.check_values(scenario, key)
        if not got:
            problems.append(f"{scenario}: no {key} reported")
        elif any(v != want for v in got):
            problems.append(f"{scenario}: {key}={','.join(got)}, expected {want}")
    return problems


def _expect_walk(out: Output, scenario: str, name: str, exp: Expect) -> list[str]:
    walk = out.walks.get((scenario, name))
    if walk is None:
        return [f"{scenario}: walk {name} missing"]
    if walk.res < 0:
        return [f"{scenario}: walk {name} failed with {walk.res}"]
    objects, end, problems = walk_shape(walk.recs, exp.kind)
    problems = [f"{scenario}/{name}: {p}" for p in problems]
    if end is None:
        return problems
    if exp.kind == "file":
        shown, more = file_slots(objects)
        got = tuple(sorted(shown.items()))
        if got != exp.files:
            problems.append(f"{scenario}/{name}: slots and files {list(got)}, expected "
                            f"{list(exp.files)}")
        nr = end.dec("nr_user_files")
    else:
        bufs, more = buf_slots(objects)
        if tuple(sorted(bufs)) != exp.bufs:
            problems.append(f"{scenario}/{name}: buffer slots {sorted(bufs)}, expected "
                            f"{list(exp.bufs)}")
        nr = end.dec("nr_user_bufs")
    problems += [f"{scenario}/{name}: {p}" for p in more]
    if nr != exp.nr:
        problems.append(f"{scenario}/{name}: the final call sees {nr} slots, expected {exp.nr}")
    return problems


def judge_lifetime(out: Output) -> tuple[dict[str, Counts], list[str]]:
    """Per scenario: walks judged (ok/failed), their EDEADLK retries, checks; problems."""
    per: dict[str, Counts] = {}
    problems: list[str] = []

    def judge(scenario: str, walk_problems: Iterable[tuple[str, list[str]]],
              checks: dict[str, str]) -> None:
        c = per.setdefault(scenario, Counts())
        for _, p in walk_problems:
            if p:
                c.failed += 1
                problems.extend(p)
            else:
                c.ok += 1
        check_problems = _expect_checks(out, scenario, checks)
        c.failed += len(check_problems)
        problems.extend(check_problems)
        c.edeadlk += sum(w.busy for (s, _), w in out.walks.items() if s == scenario)

    sc = "lifetime-ring-closed"
    judge(sc, [(n, _cut_short(out, sc, n, f"ref-{n.split('-')[1]}", 0))
               for n in ("links-buf", "links-file", "iter-buf", "iter-file")],
          {"freed": "1"})

    sc = "lifetime-unregister-midwalk"
    judge(sc, [("midwalk", _stale(out, sc, "midwalk")), ("new", _new_buffers(out, sc))],
          {"unregister_ret": "0", "register_ret": "0", "read_after_end": str(-ESTALE),
           "freed": "lu:1"})

    sc = "lifetime-files-midwalk"
    judge(sc, [(n, _expect_walk(out, sc, n, e)) for n, e in LIFETIME_FILE_WALKS.items()]
          + [(n, _stale(out, sc, n)) for n in LIFETIME_FILE_STALE],
          {"update_ret": "1", "grow_ret": "0", "shrink_ret": "0"})

    sc = "lifetime-ring-closed-midwalk"
    judge(sc, [("midwalk", _cut_short(out, sc, "midwalk", "ref-buf", 1))],
          {"freed": "1"})

    sc = "lifetime-own-request"
    judge(sc, [], {"submit_ret": "0", "freed": "1"})
    return per, problems


def _new_buffers(out: Output, sc: str) -> list[str]:
    walk = out.walks.get((sc, "new"))
    if walk is None or walk.res < 0:
        return [f"{sc}: walk new missing or failed"]
    objects, end, problems = walk_shape(walk.recs, "buf")
    problems = [f"{sc}/new: {p}" for p in problems]
    bufs, more = buf_slots(objects)
    problems += [f"{sc}/new: {p}" for p in more]
    expected = {r.dec("slot"): (r.hexv("addr"), r.dec("len")) for r in out.all("newbuf")}
    if bufs != expected:
        problems.append(f"{sc}/new: buffers {bufs}, expected the new registration {expected}")
    if end is not None and end.dec("nr_user_bufs") != len(expected):
        problems.append(f"{sc}/new: nr_user_bufs={end.dec('nr_user_bufs')}, expected "
                        f"{len(expected)}")
    return problems
