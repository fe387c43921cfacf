"""Console log -> findings (kernel reports), attributed to guest tests.

One job: read a recorded console log, find the kernel's own bug reports in
it (lockdep, KASAN, hung tasks, lockups, RCU stalls, WARN, BUG/oops, panics)
plus the guest runner's TIMEOUT markers, and say which test was running when
each report began. Pure parsing: no I/O except in main(), never prints.

Line model
    A console line is `[  sec.usec] text`, optionally with a `<N>` level in
    front and a `[ T123]`/`[ C1]` caller field behind the timestamp. Lines may
    end in \\r\\n, carry ANSI escapes, or have the kernel line glued behind
    userspace output (`user text[  1.2] kernel text`); the prefix is cut and
    only the kernel text is kept. In a log that has timestamps at all, lines
    without one (userspace stderr, host notes) are ignored: they never start,
    join or end a report and are never taken as markers.

Reports
    Every header the scanner knows is one row of _OOPSES in logrules.py (one table, first
    match wins, so `BUG: KASAN:` never falls through to the generic `BUG:`).
    A report runs from its header (plus a `[ cut here ]` or `=====` line just
    before it) to its terminator: `---[ end trace`, the `</TASK>` that closes
    the stack dump (a hung task also keeps the held-locks dump after it),
    KASAN's closing `=====`, `---[ end Kernel panic`; or until a new header, a
    harness marker, or the row's line cap. One report makes one finding:
    - the `Oops: invalid opcode` after `kernel BUG at`, the `Oops: Oops` after
      `BUG: kernel NULL pointer dereference`, and the `KASAN: null-ptr-deref in
      range` inside a general protection fault belong to that report;
    - `Kernel panic - not syncing` inside an open report (panic_on_warn), or
      after one in the same test window when its message only names the cause
      (oops=panic's "Fatal exception", softlockup_panic, hung_task_panic,
      "Attempted to kill init!"), is folded into that report so the panic
      never hides the first finding. Any other panic is a PANIC finding.
    The excerpt is the report's kernel text, prefixes cut, at most 80 lines:
    a longer report loses, in this order, unreliable `? func` frames and
    register/byte dumps, the lower frames of each stack, then its middle;
    every cut leaves a `[...]` line.

Titles
    Normalised for deduplication: no addresses, pids, CPU numbers, sizes or
    line numbers; `func.isra.0`/`.cold`/`.constprop.N` suffixes are dropped.
    F below is a function name; a title whose F cannot be found is kept
    without " in F".
    - LOCKDEP: "possible deadlock in F" (circular dependency), "possible
      recursive locking in F" (kept apart from circular on purpose: an AA and
      an ABBA bug at the same call site are different bugs), "possible irq lock
      inversion in F", "HARDIRQ-safe -> HARDIRQ-unsafe lock order in F",
      "inconsistent lock state in F", "bad unlock balance in F", "held lock
      freed in F", "lock held when returning to user space in F", "suspicious
      RCU usage in F", "invalid wait context in F", "BUG: MAX_LOCKDEP_CHAINS
      too low!", "trying to register non-static key in F", "BUG: spinlock
      <what> in F" (spinlock debugging), and "WARNING: locking bug in F" for a
      WARN inside kernel/locking/. For the lock-ordering reports F is the
      function in the `at:` of the lock being acquired (then of the lock held);
      an `at:` in a locking wrapper (lock_sock, rtnl_lock...) is replaced by
      its caller in the stack, one in workqueue flush plumbing is skipped.
    - KASAN: "KASAN: <type> <Read|Write> in F" (no Read/Write for double-free
      and invalid-free), F from the header.
    - HUNG_TASK: "INFO: task hung in F"; also "BUG: workqueue lockup".
    - SOFT_LOCKUP: "BUG: soft lockup in F"; also "watchdog: hard lockup in F".
    - RCU_STALL: "INFO: rcu detected stall in F" (all flavours, expedited too).
    - WARNING: "WARNING in F", F from the header.
    - BUG: "kernel BUG in F", "BUG: kernel NULL pointer dereference in F",
      "BUG: unable to handle page fault in F", "BUG: stack guard page was hit
      in F", "PANIC: double fault in F", "BUG: scheduling while atomic in F",
      "BUG: sleeping function called from invalid context in F", "Oops:
      <trap> in F" for an oops no other header explains, "BUG: <what> [in F]"
      for any other `BUG:` line.
    - GPF: "general protection fault in F".
    - PANIC: "kernel panic: <message>" with %pS offsets and addresses removed.
    - TIMEOUT: "hang: <nodeid> timed out after <s>s"; its excerpt is the marker.
    When F is not given by the header, it is the RIP function (oopses,
    lockups, stalls) or else the innermost stack frame that is not plumbing:
    reporting machinery, lockdep, lock/wait/scheduler primitives, allocators,
    user-copy helpers, irq entry, sanitizer hooks (_PLUMBING).

Attribution
    `harness: BEGIN <id>` opens test <id>'s window, `harness: END <id> ...`
    closes it. A finding belongs to the test whose window contains its first
    line; findings before the first BEGIN, between an END and the next BEGIN,
    or after the last END belong to None (boot or teardown). There is no grace
    period after END: a late splat caused by test X but printed after X ended
    is reported under None, never guessed onto a test. A second BEGIN of the
    same id starts a fresh window; an END, EXPECT or TIMEOUT for an id that
    never began opens a window at that line (a log whose start was lost).

Lockdep state
    ScanResult.lockdep_off_line is the first line after which lockdep is known
    to be off: an explicit announcement ("turning off the locking correctness
    validator", "Disabling lock debugging due to kernel taint", "INFO: lockdep
    is turned off.", a DEBUG_LOCKS_WARN_ON splat), or the first line of a
    report whose printing path calls debug_locks_off() (every lockdep report
    except "suspicious RCU usage", any oops, any panic). The END marker's
    debug_locks= field, read from /proc/lockdep_stats, stays the authority.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from .logrules import (Kind, _Body, _CALL_TRACE, _CONSEQUENCE, _CUT_HERE, _END_PANIC, _END_TRACE, _End, _FRAME,
                       _HELD_LOCK, _HUNG_TAIL, _LOCKDEP_OFF, _LOCKS_HELD_BY, _Line, _MARKER, _MAX_EXCERPT_LINES,
                       _OOPS_HEADERS, _Oops, _PANIC, _PANIC_GAP, _RULER, _TASK_END, _match_header, _split_lines)




@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: Kind
    title: str
    excerpt: str          # the report's lines joined with \n
    first_line: int       # 1-based line numbers in the scanned log
    last_line: int
    test: str | None      # nodeid of the test running when it started, None if outside any test


@dataclass(kw_only=True)
class TestWindow:
    nodeid: str
    begin_line: int
    end_line: int | None = None         # None: test never ended (crash, panic, hang)
    outcome: str | None = None          # from END marker
    debug_locks: bool | None = None     # None: 'na' or no END marker
    expected: list[Kind] = field(default_factory=list)   # from EXPECT markers
    # (kind, words its title must contain), from EXPECT markers that give a title
    expected_titles: list[tuple[Kind, str]] = field(default_factory=list)
    timed_out: bool = False


@dataclass(kw_only=True)
class ScanResult:
    findings: list[Finding]
    tests: dict[str, TestWindow]        # insertion order = order of BEGIN markers
    lockdep_off_line: int | None        # first line where lockdep announced it turned itself off


def findings_for(result: ScanResult, nodeid: str) -> list[Finding]:
    return [f for f in result.findings if f.test == nodeid]


# --------------------------------------------------------------------------
# Scanning

@dataclass(kw_only=True)
class _Report:
    oops: _Oops
    header: re.Match[str]
    test: str | None
    lines: list[_Line]
    end: _End
    has_oops: bool = False
    after_stack: bool = False      # HUNG: past the first </TASK>, only the lock dump may follow
    seen_locks: bool = False       # HELD_LOCKS: the "N locks held by" line went by

    @property
    def last_line(self) -> int:
        return max(line.num for line in self.lines)


class _Verdict(Enum):
    TAKE = 1          # part of the report, report goes on
    TAKE_AND_CLOSE = 2
    REFUSE = 3        # not part of it: close the report, look at the line afresh


def _feed(rep: _Report, line: _Line, header: tuple[_Oops, re.Match[str]] | None) -> _Verdict:
    if header is not None:
        oops, m = header
        if oops is _PANIC:
            rep.end = _End.PANIC
            return _Verdict.TAKE
        if oops in _OOPS_HEADERS and rep.oops.takes_oops and not rep.has_oops:
            rep.has_oops = True
            return _Verdict.TAKE
        return _Verdict.REFUSE
    if len(rep.lines) >= rep.oops.max_lines:
        return _Verdict.REFUSE
    text = line.text
    end = rep.end
    if end is _End.TRACE:
        return _Verdict.TAKE_AND_CLOSE if _END_TRACE.match(text) else _Verdict.TAKE
    if end is _End.TASK:
        return _Verdict.TAKE_AND_CLOSE if _TASK_END.match(text) else _Verdict.TAKE
    if end is _End.PANIC:
        return _Verdict.TAKE_AND_CLOSE if _END_PANIC.match(text) else _Verdict.TAKE
    if end is _End.KASAN:
        return _Verdict.TAKE_AND_CLOSE if _RULER.match(text) else _Verdict.TAKE
    if end is _End.HUNG:
        if not rep.after_stack:
            rep.after_stack = bool(_TASK_END.match(text))
            return _Verdict.TAKE
        if not _HUNG_TAIL.match(text):
            return _Verdict.REFUSE
        closing = _RULER.match(text) or text.startswith("INFO: lockdep is turned off")
        return _Verdict.TAKE_AND_CLOSE if closing else _Verdict.TAKE
    # HELD_LOCKS: "N locks held by comm/pid:" then " #i: ..." lines
    if rep.seen_locks and not _HELD_LOCK.match(text):
        return _Verdict.REFUSE
    rep.seen_locks = rep.seen_locks or bool(_LOCKS_HELD_BY.match(text))
    return _Verdict.TAKE


class _Scanner:
    def __init__(self, *, kernel_only: bool) -> None:
        self.kernel_only = kernel_only    # timestamped log: untimestamped lines are userspace
        self.tests: dict[str, TestWindow] = {}
        self.current: str | None = None
        self.reports: list[_Report] = []
        self.timeouts: list[Finding] = []
        self.open: _Report | None = None
        self.last_closed: _Report | None = None   # may still take a panic it caused
        self.recent: list[_Line] = []     # the last kernel lines since the last report or marker
        self.gap = 0                      # how many lines that was, before trimming
        self.lockdep_off: int | None = None

    # ---- markers
    def window(self, nodeid: str, num: int) -> TestWindow:
        if nodeid not in self.tests:
            self.tests[nodeid] = TestWindow(nodeid=nodeid, begin_line=num)
        return self.tests[nodeid]

    def marker(self, m: re.Match[str], line: _Line) -> None:
        self.close()
        self.recent, self.gap = [], 0
        self.last_closed = None
        verb, nodeid = m["verb"], m["nodeid"]
        fields = {k: v for k, _, v in (kv.partition("=") for kv in m["rest"].split())}
        if verb == "BEGIN":
            self.tests.pop(nodeid, None)    # a re-run replaces the earlier window
            self.tests[nodeid] = TestWindow(nodeid=nodeid, begin_line=line.num)
            self.current = nodeid
        elif verb == "EXPECT":
            word, _, title = m["rest"].strip().partition(" ")
            kinds = [k for k in Kind if k.value == word.upper()]
            win = self.window(nodeid, line.num)
            for kind in kinds:
                if kind not in win.expected:
                    win.expected.append(kind)
                if title.strip():
                    win.expected_titles.append((kind, title.strip()))
        elif verb == "END":
            win = self.window(nodeid, line.num)
            win.end_line = line.num
            win.outcome = fields.get("outcome")
            win.debug_locks = {"1": True, "0": False}.get(fields.get("debug_locks", "na"))
            if self.current == nodeid:
                self.current = None
        else:  # TIMEOUT
            self.window(nodeid, line.num).timed_out = True
            after = fields.get("after", "?")
            try:
                after = f"{float(after):g}"
            except ValueError:
                pass
            self.timeouts.append(Finding(kind=Kind.TIMEOUT, title=f"hang: {nodeid} timed out after {after}s",
                                         excerpt=line.text.strip(), first_line=line.num, last_line=line.num,
                                         test=nodeid))

    # ---- reports
    def close(self) -> None:
        if self.open is not None:
            self.last_closed = self.open
            self.open = None
            self.recent, self.gap = [], 0

    def start(self, oops: _Oops, m: re.Match[str], line: _Line) -> None:
        if oops is _PANIC and self.fold_panic(m, line):
            return
        lead: list[_Line] = []
        if oops.ruled and self.recent and _RULER.match(self.recent[-1].text):
            lead = self.recent[-1:]
        else:
            for i in range(len(self.recent) - 1, max(len(self.recent) - 7, -1), -1):
                if _CUT_HERE.match(self.recent[i].text):
                    lead = self.recent[i:]
                    break
        self.open = _Report(oops=oops, header=m, test=self.current, lines=[*lead, line], end=oops.end)
        self.reports.append(self.open)
        self.recent, self.gap = [], 0
        self.last_closed = None
        if oops.kills_lockdep:
            self.note_lockdep_off(self.open.lines[0].num)

    def fold_panic(self, m: re.Match[str], line: _Line) -> bool:
        """Fold a panic that says "the report above made me panic" (oops=panic,
        panic_on_warn, ...) into the last report of the same test window."""
        prev = self.last_closed
        if prev is None or not _CONSEQUENCE.match(m["msg"]):
            return False
        gap = self.recent if self.gap <= _PANIC_GAP else [_Line(0, f"[... {self.gap} lines ...]", True)]
        prev.lines += [*gap, line]
        prev.end = _End.PANIC
        self.open, self.last_closed = prev, None
        self.recent, self.gap = [], 0
        self.note_lockdep_off(line.num)
        return True

    def note_lockdep_off(self, num: int) -> None:
        if self.lockdep_off is None or num < self.lockdep_off:
            self.lockdep_off = num

    def feed(self, line: _Line) -> None:
        if self.kernel_only and not line.kernel:
            return                          # userspace output or host notes
        if (m := _MARKER.search(line.text)) is not None:
            self.marker(m, line)
            return
        if _LOCKDEP_OFF.search(line.text):
            self.note_lockdep_off(line.num)
        header = _match_header(line.text)
        rep = self.open
        if rep is not None:
            verdict = _feed(rep, line, header)
            if verdict is not _Verdict.REFUSE:
                rep.lines.append(line)
                if verdict is _Verdict.TAKE_AND_CLOSE:
                    self.close()
                return
            self.close()
        if header is not None:
            self.start(*header, line)
        else:
            self.recent.append(line)
            self.gap += 1
            del self.recent[:-_PANIC_GAP]

    def result(self) -> ScanResult:
        findings = [_finding(rep) for rep in self.reports] + self.timeouts
        findings.sort(key=lambda f: (f.first_line, f.last_line))
        return ScanResult(findings=findings, tests=self.tests, lockdep_off_line=self.lockdep_off)


def _finding(rep: _Report) -> Finding:
    texts = [line.text for line in rep.lines]
    kind, title = rep.oops.title(rep.header, _Body(texts))
    return Finding(kind=kind, title=title, excerpt="\n".join(_compact(texts)),
                   first_line=min(ln.num for ln in rep.lines if ln.num), last_line=rep.last_line,
                   test=rep.test)


# Lines an excerpt can lose first: register dumps, opcode bytes, KASAN's raw
# page dump and shadow-memory rows (the row marked '>' and its '^' stay).
_LOW_VALUE = re.compile(r"^(?:(?:RAX|RDX|RBP|R10|R13|RSP|FS|CS|CR2|DR0|DR3|DR6|PKRU|Code|raw|head|memcg|page_type"
                        r"|flags|Hardware name|Modules linked in|irq event stamp|hardirqs last|softirqs last):"
                        r"| [0-9a-f]{16}: [0-9a-f ]+$)")
_UNRELIABLE_FRAME = re.compile(r"^\s*\? \S+\+0x")
_MAIN_STACK_FRAMES = 16


def _compact(texts: list[str], limit: int = _MAX_EXCERPT_LINES) -> list[str]:
    """Fit a report into `limit` lines. Drops, in this order until it fits:
    unreliable `? func` frames and register/byte dumps; frames beyond the top of each stack (the first
    `Call Trace:` keeps the most); the middle of the report."""
    if len(texts) <= limit:
        return texts
    texts = [t for t in texts if not _UNRELIABLE_FRAME.match(t)]
    runs = _runs(texts, _LOW_VALUE)
    texts = [t for is_low, run in runs for t in (["  [...]"] if is_low else run)]
    if len(texts) > limit:
        texts = _trim_stacks(texts, limit)
    if len(texts) > limit:
        head = limit * 3 // 4
        texts = texts[:head] + [f"[... {len(texts) - limit + 1} lines ...]"] + texts[len(texts) - (limit - head - 1):]
    return texts


def _runs(texts: list[str], pattern: re.Pattern[str]) -> list[tuple[bool, list[str]]]:
    """Split into maximal runs of lines that do / do not match `pattern`."""
    runs: list[tuple[bool, list[str]]] = []
    for text in texts:
        hit = bool(pattern.match(text))
        if runs and runs[-1][0] == hit:
            runs[-1][1].append(text)
        else:
            runs.append((hit, [text]))
    return runs


def _trim_stacks(texts: list[str], limit: int) -> list[str]:
    runs = _runs(texts, _FRAME)
    stacks = [i for i, (is_frame, _) in enumerate(runs) if is_frame]
    if not stacks:
        return texts
    main = stacks[0]
    for i in stacks:                       # the first stack after "Call Trace:"
        if any(_CALL_TRACE.match(t) for _, run in runs[:i] for t in run):
            main = i
            break

    def size(keep: int) -> int:
        total = 0
        for i, (is_frame, run) in enumerate(runs):
            cap = max(keep, _MAIN_STACK_FRAMES) if i == main else keep
            total += min(len(run), cap) + (len(run) > cap) if is_frame else len(run)
        return total

    keep = 0
    while keep < max(len(run) for _, run in runs) and size(keep + 1) <= limit:
        keep += 1
    out: list[str] = []
    for i, (is_frame, run) in enumerate(runs):
        cap = max(keep, _MAIN_STACK_FRAMES) if i == main else keep
        if is_frame and len(run) > cap:
            out += run[:cap] + [f"  [... {len(run) - cap} frames ...]"]
        else:
            out += run
    return out


def scan_file(path: Path) -> ScanResult:
    """scan_console() on a saved log, with line numbers that match the file.

    Not Path.read_text(): its universal newlines turn the pty's \r\r\n into
    two line breaks, which doubles every line number."""
    return scan_console(path.read_bytes().decode("utf-8", errors="replace"))


def scan_console(text: str) -> ScanResult:
    """Line numbers count "\n"-separated lines of `text` (a stray \r is noise)."""
    lines = _split_lines(text)
    scanner = _Scanner(kernel_only=any(line.kernel for line in lines))
    for line in lines:
        scanner.feed(line)
    scanner.close()
    return scanner.result()


# --------------------------------------------------------------------------

def _to_json(result: ScanResult) -> dict[str, object]:
    def conv(obj: object) -> object:
        if isinstance(obj, Enum):
            return obj.value
        if isinstance(obj, dict):
            return {k: conv(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [conv(v) for v in obj]
        return obj
    return {
        "findings": [conv(asdict(f)) for f in result.findings],
        "tests": {k: conv(asdict(w)) for k, w in result.tests.items()},
        "lockdep_off_line": result.lockdep_off_line,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.logscan",
                                     description="Scan a recorded console log for kernel reports.")
    parser.add_argument("log", type=Path, help="console log file")
    args = parser.parse_args(argv)
    result = scan_file(args.log)
    json.dump(_to_json(result), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
