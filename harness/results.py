"""The result data model: plain data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    INCONCLUSIVE = "inconclusive"  # ran, but a detector it relies on was switched off
    CRASHED = "crashed"            # never finished: panic, hang, lost VM
    ERROR = "error"                # the harness or the machine failed, not the kernel

    @property
    def ok(self) -> bool:
        return self in (Status.PASS, Status.SKIP)


@dataclass(kw_only=True)
class FindingRecord:
    kind: str
    title: str
    suite: str
    test: str | None
    excerpt: str
    console_lines: tuple[int, int]
    expected: bool = False
    duplicates: int = 0


@dataclass(kw_only=True)
class TestResult:
    __test__ = False   # not a pytest test class
    suite: str
    name: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)   # titles
    expected: list[str] = field(default_factory=list)   # kinds the test must produce
    # outcome counts a stress scenario reported (e.g. {"ok": 40, "edeadlk": 40, "failed": 0})
    outcomes: dict[str, int] = field(default_factory=dict)
    # the same per sub-scenario, with "rounds" and "ms" where the test gave them
    scenarios: dict[str, dict[str, int]] = field(default_factory=dict)
    # a checkpoint scenario's dump figures (uringcr's report, CRIU's names): "checkpoint"
    checkpoint: dict[str, int] = field(default_factory=dict)
    # a restore's figures (uringcr verify: restore_us, nops, equal as 0/1, ...): "restore"
    restore: dict[str, int] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.suite}::{self.name}"


@dataclass(kw_only=True)
class StageResult:
    name: str
    status: Status
    seconds: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class RunResult:
    results_dir: str
    stages: list[StageResult] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    findings: list[FindingRecord] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (all(s.status.ok for s in self.stages) and all(t.status.ok for t in self.tests)
                and not any(not f.expected for f in self.findings))

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for t in self.tests:
            out[t.status.value] += 1
        return out

    def tally(self) -> dict[str, int]:
        """The one count both summary lines print: a failed stage counts as a
        failure beside the failed tests (a run whose build failed ran no test,
        and must not read "0 failed")."""
        tests = self.counts()
        failed_tests = sum(v for k, v in tests.items() if k not in ("pass", "skip"))
        failed_stages = sum(1 for s in self.stages if not s.status.ok
                            and not any(t.suite == s.name.removeprefix("boot:")
                                        for t in self.tests if not t.status.ok))
        return {"passed": tests["pass"], "failed": failed_tests + failed_stages,
                "skipped": tests["skip"], "failed_tests": failed_tests,
                "failed_stages": failed_stages}

    def to_json(self) -> dict[str, Any]:
        def conv(obj: Any) -> Any:
            if isinstance(obj, enum.Enum):
                return obj.value
            if isinstance(obj, dict):
                return {k: conv(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [conv(v) for v in obj]
            return obj
        return {
            "ok": self.ok,
            "results_dir": self.results_dir,
            "counts": self.counts(),
            "tally": self.tally(),
            "exit_code": run_exit_code(self),
            "info": conv(self.info),
            "stages": [conv(asdict(s)) for s in self.stages],
            "tests": [conv(asdict(t)) for t in self.tests],
            "findings": [conv(asdict(f)) for f in self.findings],
        }


def run_exit_code(run: RunResult) -> int:
    """0 green; 2 when the harness or the machine failed anywhere (a stage or a
    boot in ERROR: its results are incomplete); 1 for any other failure."""
    from .errors import EXIT_FAILED, EXIT_HARNESS, EXIT_OK
    if run.ok:
        return EXIT_OK
    if any(s.status is Status.ERROR for s in run.stages) or any(
            t.status is Status.ERROR for t in run.tests):
        return EXIT_HARNESS
    return EXIT_FAILED
