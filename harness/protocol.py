"""The host-guest protocol: the one definition of what the guest says and how.

Standard library only: the host modules import it, and so does the guest's
pytest plugin (guest-tests/guest_runner.py), which runs this repository's venv
inside the VM with the repository on sys.path.

What travels, and how:

* kmsg markers, one `<5>harness: ...` line each, written to /dev/kmsg by the
  guest so that they interleave with the kernel's own reports in the console
  log (the host attributes each report to the test whose window it is in):

      harness: GUEST START
      harness: BEGIN <nodeid> budget=<s>
      harness: EXPECT <nodeid> <KIND> [<title words>]
      harness: END <nodeid> outcome=<passed|failed|skipped|error> debug_locks=<1|0|na>
      harness: TIMEOUT <nodeid> after=<s>
      harness: ROUND <n>
      harness: REPRO DONE rounds=<n> <why>
      harness: GUEST DONE rc=<n>
      harness: KEPT GUEST READY

  `budget` is the test's whole watchdog budget in seconds, already scaled
  (accelerator and stress): the guest's watchdog fires at `budget`, the host
  gives up on the window at `budget + host_grace(scale)`, so the guest's own
  sysrq dump and TIMEOUT marker always come first.

* results: one JSON object per line in `<suite>.results.jsonl` in the results
  directory (shared read-write with the guest), one per test and round, with
  the exact nodeid pytest used; the host reads those, never nodeids guessed
  back out of JUnit (which stays, for CI).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "harness: "
GUEST_START = PREFIX + "GUEST START"
# the kept-alive guest (make guest) is up and waits for retests over SSH
KEPT_READY = PREFIX + "KEPT GUEST READY"

# What a test may expect (expect_finding) and what the log scan reports.
# TIMEOUT is the harness's own (the guest watchdog), never expected.
FINDING_KINDS: tuple[str, ...] = ("LOCKDEP", "KASAN", "UBSAN", "HUNG_TASK", "SOFT_LOCKUP",
                                  "RCU_STALL", "WARNING", "BUG", "GPF", "PANIC")
TIMEOUT_KIND = "TIMEOUT"
OUTCOMES = ("passed", "failed", "skipped", "error")

# -- time budgets ------------------------------------------------------------
# A test's watchdog budget before scaling, when it declares none (timeout_s).
DEFAULT_BUDGET_S = 30.0
# How long the host waits past a window's budget, per unit of scale: enough
# for the guest's watchdog to write TIMEOUT, press sysrq w and d and exit.
HOST_GRACE_S = 30.0
# Between tests (collection, imports over 9p, fixtures of the next module) the
# host allows this much silence, per unit of scale.
IDLE_S = 60.0
# What a helper's deadline leaves of the test's budget, per unit of scale, so
# that a helper killed on its deadline is reported by the test, not the watchdog.
HELPER_MARGIN_S = 5.0


def host_grace(scale: float) -> float:
    return HOST_GRACE_S * scale


def window_deadline(budget_s: float | None, scale: float) -> float:
    """How long the host waits for a test window to end after its BEGIN."""
    if budget_s is None:   # an old guest: the default budget, scaled
        budget_s = DEFAULT_BUDGET_S * scale
    return budget_s + host_grace(scale)


def budget_for(declared_s: float | None, *, default_s: float = DEFAULT_BUDGET_S,
                timeout_scale: float = 1.0, stress_scale: float = 1.0) -> float:
    """A test's watchdog budget: what it declares (or the default), times the
    accelerator's scale and, when stress is raised, the stress scale (more
    rounds take longer; a helper must not be killed for doing what it was asked)."""
    base = declared_s if declared_s is not None else default_s
    return base * timeout_scale * max(1.0, stress_scale)


# -- nodeids -----------------------------------------------------------------
_WHITESPACE = re.compile(r"\s")


def marker_nodeid(nodeid: str) -> str:
    """A nodeid as markers carry it: whitespace would split the marker's fields."""
    return _WHITESPACE.sub("_", nodeid)


# -- markers -----------------------------------------------------------------
def begin(nodeid: str, budget_s: float) -> str:
    return f"BEGIN {marker_nodeid(nodeid)} budget={budget_s:g}"


def expect(nodeid: str, kind: str, title: str | None = None) -> str:
    words = " " + " ".join(title.split()) if title and title.split() else ""
    return f"EXPECT {marker_nodeid(nodeid)} {kind}{words}"


def end(nodeid: str, outcome: str, debug_locks: str) -> str:
    return f"END {marker_nodeid(nodeid)} outcome={outcome} debug_locks={debug_locks}"


def timeout(nodeid: str, after_s: float) -> str:
    return f"TIMEOUT {marker_nodeid(nodeid)} after={after_s:g}"


def round_start(n: int) -> str:
    return f"ROUND {n}"


def repro_done(rounds: int, why: str) -> str:
    return f"REPRO DONE rounds={rounds} {why}"


def guest_done(rc: str) -> str:
    return f"GUEST DONE rc={rc}"


# A window marker anywhere in a line (console lines carry timestamps in front).
MARKER = re.compile(PREFIX + r"(?P<verb>BEGIN|EXPECT|END|TIMEOUT) (?P<nodeid>\S+)(?P<rest>.*)$")
ROUND = re.compile(PREFIX + r"ROUND (?P<n>\d+)\s*$")
REPRO_DONE = re.compile(PREFIX + r"REPRO DONE rounds=(?P<rounds>\d+) ?(?P<why>.*?)\s*$")


@dataclass(frozen=True)
class Marker:
    verb: str
    nodeid: str
    fields: dict[str, str]
    rest: str      # everything after the nodeid, stripped


def parse_marker(text: str) -> Marker | None:
    m = MARKER.search(text)
    if m is None:
        return None
    rest = m["rest"].strip()
    fields = {k: v for k, sep, v in (kv.partition("=") for kv in rest.split()) if sep}
    return Marker(verb=m["verb"], nodeid=m["nodeid"], fields=fields, rest=rest)


def marker_budget(marker: Marker) -> float | None:
    try:
        return float(marker.fields["budget"])
    except (KeyError, ValueError):
        return None


# The same, for pexpect on the raw console stream (bytes, \r\n endings; a
# marker counts only once its line is complete, so a nodeid cut at the end of
# pexpect's buffer never matches).
CONSOLE_BEGIN = re.compile(rb"harness: BEGIN (\S+)([^\n]*)\n")
CONSOLE_END = re.compile(rb"harness: END (\S+) outcome=(\S+)[^\n]*\n")
CONSOLE_TIMEOUT = re.compile(rb"harness: TIMEOUT (\S+)[^\n]*\n")
CONSOLE_ROUND = re.compile(rb"harness: ROUND (\d+)[^\n]*\n")
CONSOLE_REPRO_DONE = re.compile(rb"harness: REPRO DONE ([^\n]*?)\r*\n")


def console_budget(rest: bytes) -> float | None:
    m = re.search(rb"budget=([0-9.]+)", rest)
    return float(m.group(1)) if m else None


# -- kernel reports ----------------------------------------------------------
# The first line of every kernel report the host's log scan has a rule for
# (harness/logscan.py; its tests check that each rule's header matches this).
# The guest's reproduce loop stops at the first /dev/kmsg message matching it.
REPORT_START = re.compile(
    r"^\s*(?:WARNING: |BUG: |kernel BUG at |Kernel BUG at |INFO: task \S.* blocked |"
    r"(?:rcu: )?INFO: rcu\w* (?:self-)?detected |(?:NMI )?watchdog: |Watchdog detected hard LOCKUP|"
    r"Kernel panic - not syncing|Oops: |(?:segment-related )?general protection fault|"
    r"UBSAN: |PANIC: double fault|\[ BUG: Invalid wait context \]|"
    r"INFO: trying to register non-static key)")


def starts_report(message: str) -> bool:
    return REPORT_START.match(message) is not None


# -- results -----------------------------------------------------------------
def results_file(results_dir: Path, suite: str) -> Path:
    return results_dir / f"{suite}.results.jsonl"


@dataclass(frozen=True, kw_only=True)
class GuestResult:
    """One test's result as the guest's plugin saw it (one per round)."""

    nodeid: str                 # pytest's own
    outcome: str                # one of OUTCOMES
    seconds: float
    message: str = ""
    round: int | None = None    # reproduce mode
    properties: dict[str, Any] = field(default_factory=dict)   # record_property()

    @property
    def marker_id(self) -> str:
        return marker_nodeid(self.nodeid)

    def to_line(self) -> str:
        data = {"nodeid": self.nodeid, "outcome": self.outcome,
                "seconds": round(self.seconds, 3), "message": self.message,
                "round": self.round, "properties": self.properties}
        return json.dumps(data, sort_keys=True, default=str) + "\n"


class ResultsError(ValueError):
    pass


def parse_record(line: str) -> GuestResult:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ResultsError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodeid"), str):
        raise ResultsError("a result needs a string nodeid")
    outcome = data.get("outcome")
    if outcome not in OUTCOMES:
        raise ResultsError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    props = data.get("properties") or {}
    rnd = data.get("round")
    return GuestResult(nodeid=data["nodeid"], outcome=outcome,
                      seconds=float(data.get("seconds") or 0.0),
                      message=str(data.get("message") or ""),
                      round=int(rnd) if isinstance(rnd, int) else None,
                      properties=dict(props) if isinstance(props, dict) else {})


def read_results(path: Path) -> tuple[list[GuestResult], list[str]]:
    """Every record of a results file, and a note per line that was not one
    (a guest killed mid-write leaves a cut last line)."""
    if not path.exists():
        return [], []
    records, problems = [], []
    for num, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(parse_record(line))
        except ResultsError as exc:
            problems.append(f"{path.name}:{num}: {exc}")
    return records, problems
