"""Reproduce mode: one boot, the selected tests in rounds until the first finding.

The guest's runner plugin (HARNESS_REPEAT) writes `harness: ROUND <n>` before
each round and `harness: REPRO DONE rounds=<n> <why>` when it stops: the count
is done, a test failed, the kernel reported something, or the time budget ran
out.  Here the console log is read back into one line for the developer: how
many rounds ran, and in which round the first kernel finding appeared.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from . import protocol
from .logscan import Finding, ScanResult

_ROUND = protocol.ROUND
_DONE = protocol.REPRO_DONE


@dataclass(frozen=True, kw_only=True)
class ReproSummary:
    tests: tuple[str, ...]
    requested: int            # 0: until the first finding
    rounds: int               # rounds started
    stopped: str              # the guest's reason, or what the host saw
    finding_round: int | None
    finding: str | None       # "KIND: title" of the first finding
    seconds: float

    @property
    def found(self) -> bool:
        return self.finding is not None

    def line(self) -> str:
        what = " ".join(self.tests)
        asked = f"of {self.requested} " if self.requested else ""
        if self.finding is not None:
            per = f", {self.seconds / self.rounds:.1f} s per round" if self.rounds else ""
            return (f"reproduce: {what}: first finding in round {self.finding_round} "
                    f"{asked}after {self.seconds:.0f}s{per}: {self.finding}")
        return (f"reproduce: {what}: no finding in {self.rounds} round(s) {asked}"
                f"({self.seconds:.0f}s; {self.stopped})")

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "line": self.line()}


def round_starts(console: str) -> list[tuple[int, int]]:
    """(round, 1-based console line) of every ROUND marker."""
    starts = []
    # numbered as the log scan numbers them: "\n" ends a line, "\r" does not
    for num, line in enumerate(console.split("\n"), start=1):
        m = _ROUND.search(line)
        if m:
            starts.append((int(m.group(1)), num))
    return starts


def round_of(line: int, starts: list[tuple[int, int]]) -> int | None:
    current = None
    for number, at in starts:
        if at <= line:
            current = number
    return current


_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    return float(m.group(1)) if m else None


def summarize(console: str, scan: ScanResult, *, tests: tuple[str, ...], requested: int,
              seconds: float, vm_detail: str = "", vm_problem: str | None = None
              ) -> ReproSummary:
    """seconds is the fallback duration when the markers carry no kernel timestamps;
    vm_problem (a hang, a panic, a lost VM) counts as the finding when the log
    scan has none: the round that was running is where it happened."""
    lines = console.split("\n")
    starts = round_starts(console)
    stopped = vm_detail or "the guest did not say why it stopped"
    rounds = max((n for n, _ in starts), default=0)
    first_stamp = _stamp(lines[starts[0][1] - 1]) if starts else None
    last_stamp = None
    for line in lines:
        m = _DONE.search(line)
        if m:
            rounds, stopped = int(m.group(1)), m.group(2) or "done"
            last_stamp = _stamp(line)
    if first_stamp is not None and last_stamp is not None:
        seconds = last_stamp - first_stamp
    # the first finding after the loop began (boot noise before it is the
    # boot's problem, reported as such by the verdict)
    first: Finding | None = None
    begin = starts[0][1] if starts else None
    for f in sorted(scan.findings, key=lambda f: f.first_line):
        if begin is not None and f.first_line >= begin:
            first = f
            break
    finding = f"{first.kind.value}: {first.title}" if first else None
    finding_round = round_of(first.first_line, starts) if first else None
    if finding is None and vm_problem:
        finding, finding_round = f"VM {vm_problem}", rounds or None
    return ReproSummary(tests=tests, requested=requested, rounds=rounds, stopped=stopped,
                        finding_round=finding_round, finding=finding, seconds=seconds)
