"""Self-tests of lockorder.py, the judge of the c/lockorder_*.c programs' output, on the host.

The helper's output is built here in its exact format (the lines
bpf/uring_iter.bpf.c prints, and the helper's own), from a model of the
tables: a consistent walk must pass, and each mutation, standing for one way
the iterator or the locking could be wrong (a torn table, a stale one, a
second final call, a walk not ended by its read), must be caught with a
message naming it. fixtures/uring_lockorder/<family>.txt holds output recorded in
the guest (when the programs c/lockorder_<family>.c were the modes of one
c/uring_lockorder.c; they print the same lines but for the KTAP test name);
it must pass too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lockorder as lo
import test_lock_ordering as tlo
from stress import Stress

FIXTURES = Path(__file__).parent / "fixtures" / "uring_lockorder"
RING = 0xFFFF888004A1C000
PAGE = 4096


# ----------------------------------------------------------------------------
# lines as the BPF programs print them


def buf_lines(table: dict[int, tuple[int, int]], *, ring: int = RING, seq0: int = 0) -> list[str]:
    """One line per bio_vec of each buffer (small pages), slots in order."""
    lines = []
    seq = seq0
    for slot in sorted(table):
        addr, length = table[slot]
        first, end = addr // PAGE, (addr + length - 1) // PAGE
        nr = end - first + 1
        ubuf = 0xFFFF888006000000 + slot * 0x1000
        for i in range(nr):
            start = addr if i == 0 else (first + i) * PAGE
            stop = min(addr + length, (first + i + 1) * PAGE)
            lines.append(
                f"buf seq={seq} ring={ring:x} slot={slot} tbl={ubuf:x} ubuf={ubuf:x} "
                f"addr={addr:x} len={length} nr_bvecs={nr} folio_shift=12 refs=1 "
                f"acct_pages={nr} bvec={ubuf + 0x30 + 16 * i:x} bvec_index={i} "
                f"bv_page=ffffea0000123400 bv_len={stop - start} bv_offset={start % PAGE} "
                f"pfn=48d0")
            seq += 1
    return lines


def file_lines(table: dict[int, str], *, ring: int = RING, seq0: int = 0) -> list[str]:
    lines = []
    for n, slot in enumerate(sorted(table)):
        f = 0xFFFF888007000000 + slot * 0x100
        lines.append(f"file ring={ring:x} slot={slot} tbl={f | 2:x} file={f:x} seq={seq0 + n} "
                     f"ino={100 + slot} dev=1 rdev=0 mode=8180 f_flags=8002 f_mode=4a801f pos=0 "
                     f"count=1 sk_type=-1 sk_family=-1 name={table[slot]}")
    return lines


def end_line(kind: str, seq_num: int, *, bufs: int = 0, files: int = 0, ring: int = RING) -> str:
    return (f"end {kind} ring={ring:x} seq_num={seq_num} nr_user_bufs={bufs} "
            f"nr_user_files={files} sq_entries=16 cq_entries=32 setup_flags=0 "
            f"bvec_array_off=48 bio_vec_size=16 page_size=64")


def walk(scenario: str, name: str, lines: list[str], *, busy: int = 0, extra: str = "",
         res: int | None = None) -> list[str]:
    text = "\n".join(lines) + "\n"
    n = len(text) if res is None else res
    head = f"walk scenario={scenario} name={name} res={n} busy={busy}" + (f" {extra}" if extra else "")
    return [head] + [f"iter {scenario}/{name} {line}" for line in lines]


def ktap(body: list[str], mode: str) -> str:
    return "\n".join(["TAP version 13", "1..1", *body, f"ok 1 {mode}"]) + "\n"


# ----------------------------------------------------------------------------
# busy: the model of c/lockorder_busy.c's sets

SETS, SLOTS, REREG = 8, 4, 5
BASE = 0x7F0000000000


def set_bufs(s: int) -> dict[int, tuple[int, int]]:
    return {i: (BASE + (s * SLOTS + i) * 2 * PAGE + 512 * ((s + i) % 8), 3000 + 100 * s + 10 * i)
            for i in range(SLOTS) if i != s % SLOTS}


def set_files(s: int) -> dict[int, str]:
    return {i: f"memfd:lo-s{s}-i{i}" for i in range(SLOTS) if i != s % SLOTS}


def busy_head() -> list[str]:
    lines = [f"busy sets={SETS} slots={SLOTS} rereg_every={REREG}"]
    for s in range(SETS):
        bufs, files = set_bufs(s), set_files(s)
        for i in range(SLOTS):
            if i in bufs:
                lines.append(f"genbuf set={s} slot={i} addr={bufs[i][0]:x} len={bufs[i][1]}")
                lines.append(f"genfile set={s} slot={i} name={files[i]}")
            else:
                lines.append(f"genbuf set={s} slot={i} empty")
                lines.append(f"genfile set={s} slot={i} empty")
    return lines


def busy_walk(n: int, kind: str, *, s: int | None, lo_: int, hi: int, busy: int = 0,
              eof: int = 0, lines: list[str] | None = None) -> list[str]:
    """Walk w<n> showing set @s (None: no table)."""
    if lines is None:
        if s is None:
            lines = [end_line(kind, 0)]
        elif kind == "buf":
            objs = buf_lines(set_bufs(s))
            lines = objs + [end_line("buf", len(objs) - 1, bufs=SLOTS, files=SLOTS)]
        else:
            objs = file_lines(set_files(s))
            lines = objs + [end_line("file", len(objs) - 1, bufs=SLOTS, files=SLOTS)]
    return walk("busy", f"w{n}", lines, busy=busy,
                extra=f"it={kind} lo={lo_} hi={hi} eof={eof} eof_busy=0")


def busy_output(*walks: list[str]) -> lo.Output:
    body = busy_head()
    for w in walks:
        body += w
    body.append("timing scenario=busy rounds=2 ms=10")
    return lo.parse_output(ktap(body, "busy"))


def judge(*walks: list[str]) -> tuple[lo.Counts, str]:
    counts, problems, _ = lo.judge_busy(busy_output(*walks))
    return counts, "\n".join(problems)


def test_busy_consistent_walks_pass() -> None:
    counts, problems = judge(
        busy_walk(0, "buf", s=0, lo_=0, hi=0, busy=3),
        busy_walk(1, "file", s=1, lo_=0, hi=1),
        busy_walk(2, "buf", s=2, lo_=2, hi=3),
        # change 5 re-registers: between its two calls there is no table
        busy_walk(3, "file", s=None, lo_=4, hi=5),
        busy_walk(4, "buf", s=5, lo_=4, hi=5))
    assert problems == ""
    assert counts.as_dict() == {"ok": 5, "edeadlk": 3, "failed": 0}


@pytest.mark.parametrize("walk_lines,words", [
    # slot 1 from set 3 in a walk of set 2: a table changed under the lock
    (busy_walk(0, "buf", s=None, lo_=2, hi=2, lines=(
        lambda o: o + [end_line("buf", len(o) - 1, bufs=SLOTS)])(
        buf_lines({**set_bufs(2), 1: set_bufs(3)[1]}))), "torn"),
    (busy_walk(0, "file", s=None, lo_=2, hi=2, lines=(
        lambda o: o + [end_line("file", len(o) - 1, files=SLOTS)])(
        file_lines({**set_files(2), 3: "memfd:lo-s5-i3"}))), "torn"),
    # set 1 was replaced by change 2 before the read began
    (busy_walk(0, "buf", s=1, lo_=2, hi=3), "stale"),
    (busy_walk(0, "file", s=4, lo_=1, hi=3), "stale"),
    # no table, but no re-registration in the window
    (busy_walk(0, "buf", s=None, lo_=1, hi=3), "re-registration"),
    # the read did not end the walk
    (busy_walk(0, "buf", s=0, lo_=0, hi=0, eof=300), "the read after the walk"),
    (busy_walk(0, "buf", s=0, lo_=0, hi=0, eof=-lo.EDEADLK), "the read after the walk"),
    # the final call twice / missing
    (busy_walk(0, "file", s=0, lo_=0, hi=0, lines=(
        lambda o: o + [end_line("file", len(o) - 1, files=SLOTS)] * 2)(file_lines(set_files(0)))),
     "final calls"),
    (busy_walk(0, "file", s=0, lo_=0, hi=0, lines=file_lines(set_files(0))), "final calls"),
    # a buffer's bio_vecs incomplete, slots out of order, the table entry elsewhere
    (busy_walk(0, "buf", s=0, lo_=0, hi=0, lines=(
        lambda o: o + [end_line("buf", len(o) - 1, bufs=SLOTS)])(
        [line for line in buf_lines(set_bufs(0)) if "bvec_index=1 " not in line])),
     "bvec_index"),
    (busy_walk(0, "file", s=0, lo_=0, hi=0, lines=(
        lambda o: [o[1], o[0], o[2], end_line("file", 2, files=SLOTS)])(
        file_lines(set_files(0)))), "strictly increasing"),
    (busy_walk(0, "buf", s=0, lo_=0, hi=0, lines=(
        lambda o: [o[0].replace("tbl=", "tbl=1")] + o[1:] + [end_line("buf", len(o) - 1,
                                                                      bufs=SLOTS)])(
        buf_lines(set_bufs(0)))), "table entry"),
    (busy_walk(0, "file", s=0, lo_=0, hi=0, lines=(
        lambda o: o + [end_line("file", len(o) - 1, files=SLOTS - 1)])(file_lines(set_files(0)))),
     "nr_user_files"),
    # another ring's object
    (busy_walk(0, "file", s=0, lo_=0, hi=0, lines=(
        lambda o: o + [end_line("file", len(o) - 1, files=SLOTS)])(
        file_lines(set_files(0))[:1] + file_lines(set_files(0), ring=RING + 0x1000)[1:])),
     "different rings"),
])
def test_busy_mutations_are_caught(walk_lines: list[str], words: str) -> None:
    counts, problems = judge(walk_lines)
    assert counts.failed == 1 and counts.ok == 0
    assert words in problems, problems


def test_busy_failed_reads_count_as_failed() -> None:
    counts, problems = judge(
        walk("busy", "w0", [], busy=100000, res=-lo.EDEADLK,
             extra="it=buf lo=0 hi=9 eof=0 eof_busy=0"),
        walk("busy", "w1", [], res=-5, extra="it=file lo=0 hi=9 eof=0 eof_busy=2"))
    assert counts.as_dict() == {"ok": 0, "edeadlk": 100002, "failed": 2}
    assert "EDEADLK on every attempt" in problems and "error -5" in problems


def test_visible_sets_window() -> None:
    sets = lo.busy_sets(busy_output())
    assert sets.visible(3, 3) == ({3}, False)
    assert sets.visible(3, 5) == ({3, 4, 5}, True)
    assert sets.visible(0, 30)[0] == set(range(SETS))
    assert sets.identify("buf", dict(set_bufs(6))) == [6]
    assert sets.identify("file", dict(set_files(6))) == [6]


# ----------------------------------------------------------------------------
# lifetime


def lifetime_text(mutate: dict[str, list[str]] | None = None) -> str:
    """A run of the lifetime mode's deterministic scenarios as it must look."""
    body: list[str] = []
    w: dict[str, list[str]] = {}
    ref_buf = buf_lines({0: (BASE, PAGE), 2: (BASE + PAGE + 100, 2 * PAGE)})
    ref_buf.append(end_line("buf", len(ref_buf) - 1, bufs=3, files=4))
    ref_file = file_lines({0: "memfd:lo-lc", 2: "null", 3: "pipe:[77]"})
    ref_file.append(end_line("file", 2, bufs=3, files=4))
    sc = "lifetime-ring-closed"
    # the ring freed under its links and iterator fds: their walks end at once
    for name, lines in (("ref-buf", ref_buf), ("ref-file", ref_file), ("links-buf", []),
                        ("links-file", []), ("iter-buf", []), ("iter-file", [])):
        w[f"{sc}/{name}"] = walk(sc, name, lines)
    body += [f"check scenario={sc} freed=1"]

    sc = "lifetime-unregister-midwalk"
    w[f"{sc}/ref-buf"] = walk(sc, "ref-buf", ref_buf)
    w[f"{sc}/midwalk"] = walk(sc, "midwalk", [], res=-lo.ESTALE, busy=2)
    new = {0: (BASE + 3 * PAGE, 77), 1: (BASE, 2 * PAGE)}
    new_lines = buf_lines(new)
    w[f"{sc}/new"] = walk(sc, "new", new_lines + [end_line("buf", 2, bufs=2, files=4)])
    body += [f"newbuf slot={s} addr={a:x} len={n}" for s, (a, n) in new.items()]
    body += [f"check scenario={sc} unregister_ret=0", f"check scenario={sc} register_ret=0",
             f"check scenario={sc} read_after_end={-lo.ESTALE}", f"check scenario={sc} freed=lu:1"]

    sc = "lifetime-files-midwalk"
    for name, exp in lo.LIFETIME_FILE_WALKS.items():
        objs = file_lines(dict(exp.files))
        w[f"{sc}/{name}"] = walk(sc, name, objs + [end_line("file", len(objs) - 1, files=exp.nr)])
    for name in lo.LIFETIME_FILE_STALE:
        w[f"{sc}/{name}"] = walk(sc, name, [], res=-lo.ESTALE)
    body += [f"check scenario={sc} update_ret=1", f"check scenario={sc} grow_ret=0",
             f"check scenario={sc} shrink_ret=0"]

    sc = "lifetime-ring-closed-midwalk"
    w[f"{sc}/ref-buf"] = walk(sc, "ref-buf", ref_buf)
    w[f"{sc}/midwalk"] = walk(sc, "midwalk", ref_buf[:1])
    body += [f"check scenario={sc} freed=1"]

    sc = "lifetime-own-request"
    body += [f"check scenario={sc} submit_ret=0", f"check scenario={sc} freed=1"]
    body += ["check scenario=lifetime-stress freed_rings=3",
             "outcome scenario=lifetime-stress ok=12 edeadlk=5 failed=0 rounds=3 ms=900"]
    for key, lines in w.items():
        body += (mutate or {}).get(key, lines)
    return ktap(body, "lifetime")


def test_lifetime_expected_output_passes() -> None:
    per, problems = lo.judge_lifetime(lo.parse_output(lifetime_text()))
    assert problems == []
    assert per["lifetime-ring-closed"].as_dict() == {"ok": 4, "edeadlk": 0, "failed": 0}
    assert per["lifetime-unregister-midwalk"].as_dict() == {"ok": 2, "edeadlk": 2, "failed": 0}
    assert per["lifetime-files-midwalk"].ok == 3


def _file_walk(sc: str, name: str, table: dict[int, str], nr: int) -> list[str]:
    objs = file_lines(table)
    return walk(sc, name, objs + [end_line("file", len(objs) - 1, files=nr)])


@pytest.mark.parametrize("key,lines,words", [
    # a walk that went on in the table registered in place of its own
    ("lifetime-files-midwalk/grow",
     _file_walk("lifetime-files-midwalk", "grow",
                {0: "memfd:lt-a0", 3: "memfd:lt-c3", 40: "memfd:lt-c40"}, 64),
     "walk grow gave 4 lines, expected -ESTALE"),
    # a slot behind the walk shown again, a cleared slot shown (stale file)
    ("lifetime-files-midwalk/update",
     _file_walk("lifetime-files-midwalk", "update",
                {0: "memfd:lt-a0", 1: "memfd:lt-a1", 3: "memfd:lt-a3", 5: "memfd:lt-b5",
                 6: "memfd:lt-b6", 7: "memfd:lt-a7"}, 8), "update: slots and files"),
    ("lifetime-files-midwalk/shrink",
     walk("lifetime-files-midwalk", "shrink", [], res=-lo.EDEADLK), "error -35, expected -ESTALE"),
    # a walk ended as if the unregistered table had been shown whole
    ("lifetime-unregister-midwalk/midwalk",
     walk("lifetime-unregister-midwalk", "midwalk",
          buf_lines({0: (BASE, PAGE)}) + [end_line("buf", 1, files=4)]),
     "expected -ESTALE: the table it began in was unregistered"),
    ("lifetime-unregister-midwalk/new",
     walk("lifetime-unregister-midwalk", "new",
          buf_lines({0: (BASE + 3 * PAGE, 77)}) + [end_line("buf", 0, bufs=2, files=4)]),
     "the new registration"),
    ("lifetime-ring-closed/iter-file",
     walk("lifetime-ring-closed", "iter-file", [], res=-9), "failed with -9"),
    # a walk of a ring that went still showing it, with or without the final call
    ("lifetime-ring-closed/links-buf",
     walk("lifetime-ring-closed", "links-buf",
          buf_lines({0: (BASE, PAGE)}) + [end_line("buf", 0, bufs=3, files=4)]),
     "expected the first 0 of ref-buf"),
    ("lifetime-ring-closed-midwalk/midwalk",
     walk("lifetime-ring-closed-midwalk", "midwalk",
          buf_lines({0: (BASE, PAGE)}) + [end_line("buf", 0, bufs=3, files=4)]),
     "expected the first 1 of ref-buf and no final call"),
    ("lifetime-ring-closed-midwalk/midwalk",
     walk("lifetime-ring-closed-midwalk", "midwalk",
          buf_lines({0: (BASE, PAGE), 2: (BASE + PAGE + 100, 2 * PAGE)})),
     "expected the first 1 of ref-buf"),
])
def test_lifetime_mutations_are_caught(key: str, lines: list[str], words: str) -> None:
    per, problems = lo.judge_lifetime(lo.parse_output(lifetime_text({key: lines})))
    assert per[key.split("/")[0]].failed == 1
    assert any(words in p for p in problems), problems


def test_lifetime_checks_are_judged() -> None:
    text = lifetime_text().replace("check scenario=lifetime-ring-closed freed=1",
                                   "check scenario=lifetime-ring-closed freed=0")
    text = text.replace("check scenario=lifetime-own-request freed=1\n", "")
    per, problems = lo.judge_lifetime(lo.parse_output(text))
    assert "lifetime-ring-closed: freed=0, expected 1" in problems
    assert "lifetime-own-request: no freed reported" in problems
    assert per["lifetime-own-request"].failed == 1


# ----------------------------------------------------------------------------
# the helper's other lines and the recorded properties


def test_parse_outcomes_checks_and_bad_lines() -> None:
    out = lo.parse_output(ktap([
        "outcome scenario=self-fixed-file ok=0 edeadlk=0 failed=1 refused=48 rounds=1 ms=20",
        "outcome scenario=abba-inline ok=300 edeadlk=180 failed=0 rounds=60 ms=4000",
        "bad scenario=self-fixed-file path=register-files fd=a-buf-link res=0 expected=-9",
        "check scenario=held probe_blocked=1",
        "check scenario=held probe_blocked=0",
        "# a diagnostic",
        "step held r",
        "iter nowhere/x buf seq=0",
    ], "fixed"))
    assert out.result is not None and out.result["ok"] == "ok"
    assert out.outcomes["self-fixed-file"].as_dict() == {
        "ok": 0, "edeadlk": 0, "failed": 1, "refused": 48}
    assert out.outcomes["abba-inline"].rounds == 60
    assert out.check_values("held", "probe_blocked") == ["1", "0"]
    assert out.diags == ["a diagnostic"]
    assert out.bad[0].startswith("scenario=self-fixed-file path=register-files")
    assert "unannounced walk" in out.bad[1]


def test_verdict_records_totals_and_scenarios() -> None:
    out = lo.parse_output(ktap([
        "outcome scenario=abba-inline ok=30 edeadlk=10 failed=0 rounds=5 ms=400",
        "outcome scenario=abba-iowq ok=38 edeadlk=2 failed=0 rounds=5 ms=400",
        "outcome scenario=abba-read2 ok=9 edeadlk=1 failed=0 rounds=5 ms=400",
    ], "abba"))
    recorded: dict[str, str] = {}
    finished = tlo.Finished(argv=("uring_lockorder", "abba"), returncode=0, timed_out=False,
                            output="", seconds=1.0)
    v = tlo.Verdict(lambda k, val: recorded.__setitem__(k, str(val)), finished, out)
    v.expect("abba-inline", total=40, ok_min=1)
    v.expect("abba-iowq", total=40, ok_min=1, edeadlk_min=3)
    with pytest.raises(pytest.fail.Exception) as failure:
        v.done()
    assert "abba-iowq: edeadlk=2, expected at least 3" in str(failure.value)
    assert json.loads(recorded["outcomes"]) == {"ok": 77, "edeadlk": 13, "failed": 0}
    assert json.loads(recorded["scenarios"])["abba-read2"] == {
        "ok": 9, "edeadlk": 1, "failed": 0, "rounds": 5, "ms": 400}


def test_stress_rounds() -> None:
    assert tlo.rounds_of(Stress(scale=1.0, rounds=None), "busy") == tlo.DEFAULT_ROUNDS["busy"]
    assert tlo.rounds_of(Stress(scale=0.01, rounds=None), "held") == 1
    assert tlo.rounds_of(Stress(scale=3.0), "self") == 3 * tlo.DEFAULT_ROUNDS["self"]
    assert tlo.rounds_of(Stress(scale=3.0, rounds=7), "abba") == 7
    with pytest.raises(pytest.UsageError):
        Stress(scale=0.0)
    with pytest.raises(pytest.UsageError):
        Stress(rounds=0)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.txt")) if FIXTURES.is_dir() else [],
                         ids=lambda p: p.stem)
def test_recorded_output_passes(path: Path) -> None:
    out = lo.parse_output(path.read_text())
    assert out.result is not None and out.result["ok"] == "ok"
    assert out.bad == []
    if path.stem == "busy":
        counts, problems, _ = lo.judge_busy(out)
        assert problems == [] and counts.failed == 0 and counts.ok > 0
    elif path.stem == "lifetime":
        per, problems = lo.judge_lifetime(out)
        assert problems == []
    else:
        assert out.outcomes and all(c.failed == 0 for c in out.outcomes.values())


def test_recorded_busy_mutations_are_caught() -> None:
    """On real output: a walk moved outside its window is stale, a buffer of
    another set in a walk is a torn table."""
    text = (FIXTURES / "busy.txt").read_text()
    lines = text.splitlines()
    # the first successful walk of a full buffer table
    i = next(n for n, line in enumerate(lines)
             if line.startswith("walk scenario=busy") and " it=buf " in line
             and lines[n + 1].startswith("iter busy/") and " buf seq=0 " in lines[n + 1])
    head = lo.parse_rec(lines[i])
    lo_, hi = int(head.kv["lo"]), int(head.kv["hi"])
    far = lo_ + 3 * SETS + 3   # a window that cannot contain the set shown
    stale = lines.copy()
    stale[i] = lines[i].replace(f"lo={lo_} hi={hi}", f"lo={far} hi={far}")
    counts, problems, _ = lo.judge_busy(lo.parse_output("\n".join(stale) + "\n"))
    assert counts.failed == 1 and any("stale" in p for p in problems), problems
    # one bio_vec line of the walk with another address: no set has that
    torn = lines.copy()
    obj = lo.parse_rec(lines[i + 1].split(" ", 2)[2])
    torn[i + 1] = lines[i + 1].replace(f"addr={obj.kv['addr']}",
                                       f"addr={int(obj.kv['addr'], 16) + PAGE:x}")
    counts, problems, _ = lo.judge_busy(lo.parse_output("\n".join(torn) + "\n"))
    assert counts.failed == 1 and any("torn" in p for p in problems), problems
