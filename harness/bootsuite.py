"""Boot one suite: run the VM (once more if the kernel broke before the first
test), scan its console, judge every test, and for reproduce mode say in which
round the first finding came."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from . import protocol
from .guest import GuestEnv, guest_script
from .logscan import Kind, ScanResult, scan_file
from .reproduce import summarize
from .results import FindingRecord, Status, TestResult
from .suites import Suite, deadlines_for
from .verdict import judge_boot
from .vm import Deadlines, VmOutcome, VmSpec, VmStatus


class RunVm(Protocol):
    def __call__(self, spec: VmSpec, command: str, *, console_log: Path, deadlines: Deadlines,
                 say: Callable[[str], None]) -> VmOutcome: ...


@dataclass(kw_only=True)
class BootReport:
    tests: list[TestResult]
    findings: list[FindingRecord]
    outcome: VmOutcome
    data: dict[str, Any] = field(default_factory=dict)
    reproduce: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(t.status.ok for t in self.tests)

    @property
    def detail(self) -> str:
        bad = sum(1 for t in self.tests if not t.status.ok)
        return (f"{self.outcome.status.value} in {self.outcome.seconds:.0f}s, "
                f"{len(self.tests) - bad}/{len(self.tests)} ok")


def broke_before_tests(outcome: VmOutcome, scan: ScanResult) -> bool:
    """A kernel that crashed before the first test: infrastructure (a rare
    TCG early-boot crash), worth one more boot."""
    if outcome.status is VmStatus.BOOT_FAILURE:
        return True
    if scan.tests:
        return False
    return any(f.kind in (Kind.BUG, Kind.GPF, Kind.PANIC) for f in scan.findings)


def boot_suite(suite: Suite, spec: VmSpec, env: GuestEnv, *, results: Path, run_vm: RunVm,
               lock: Callable[[], AbstractContextManager[object]],
               say: Callable[[str], None]) -> BootReport:
    script = results / f"{suite.name}.guest.sh"
    script.write_text(guest_script(suite, env, results))
    deadlines = deadlines_for(suite, spec.scale)
    data: dict[str, Any] = {}
    console = results / f"{suite.name}.console.log"
    outcome: VmOutcome | None = None
    scan: ScanResult | None = None
    for attempt in (1, 2):
        if attempt == 2:
            console.rename(results / f"{suite.name}.console.attempt1.log")
            protocol.results_file(results, suite.name).unlink(missing_ok=True)
        if spec.monitor is not None:
            spec.monitor.unlink(missing_ok=True)
        with lock():
            outcome = run_vm(spec, f"sh {script}", console_log=console, deadlines=deadlines,
                             say=say)
        scan = scan_file(console)
        if attempt == 1 and broke_before_tests(outcome, scan):
            say(f"boot:{suite.name}: the kernel failed before the first test "
                f"({outcome.status.value}: {outcome.detail}); retrying once")
            data["retried"] = outcome.detail or outcome.status.value
            continue
        break
    assert outcome is not None and scan is not None
    records, problems = protocol.read_results(protocol.results_file(results, suite.name))
    if problems:
        data["results_problems"] = problems
    tests, findings = judge_boot(suite, records, scan, outcome)
    report = BootReport(tests=tests, findings=findings, outcome=outcome, data=data)
    if suite.repeat is not None:
        report.tests += _reproduce_summary(suite, console, scan, outcome, results, report, say)
    data.update({"vm": outcome.status.value, "vm_seconds": round(outcome.seconds, 1),
                 "boot_seconds": round(outcome.boot_seconds or 0, 1),
                 "exit_code": outcome.exit_code})
    return report


def _reproduce_summary(suite: Suite, console: Path, scan: ScanResult, outcome: VmOutcome,
                       results: Path, report: BootReport,
                       say: Callable[[str], None]) -> list[TestResult]:
    """The reproduce line; for a suite with stop_round, whether the loop
    really stopped at the first finding (it is the loop's own self-test)."""
    assert suite.repeat is not None
    # bytes, not read_text(): universal newlines would renumber the lines
    summary = summarize(console.read_bytes().decode(errors="replace"), scan,
                        tests=suite.selection, requested=suite.repeat,
                        seconds=outcome.seconds - (outcome.boot_seconds or 0),
                        vm_detail=f"{outcome.status.value}: {outcome.detail}",
                        vm_problem=(None if outcome.status is VmStatus.COMPLETED
                                    else f"{outcome.status.value}: {outcome.detail}"))
    (results / f"{suite.name}.reproduce.txt").write_text(summary.line() + "\n")
    report.reproduce = summary.as_dict()
    report.data["reproduce"] = summary.as_dict()
    say(summary.line())
    if suite.stop_round is None:
        return []
    stopped_there = (summary.finding_round == suite.stop_round
                     and summary.rounds == suite.stop_round
                     and summary.stopped.startswith("kernel report"))
    return [TestResult(
        suite=suite.name, name="<reproduce loop>",
        status=Status.PASS if stopped_there else Status.FAIL,
        message=(f"stopped in round {summary.rounds} at the first finding ({summary.finding})"
                 if stopped_there else
                 f"the loop had to stop in round {suite.stop_round} at the first finding; "
                 f"it ran {summary.rounds} round(s), first finding in round "
                 f"{summary.finding_round}, stopped: {summary.stopped}"))]
