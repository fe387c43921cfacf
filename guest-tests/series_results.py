"""The series' selftests as built by series/build.mk: what was built, and the runner's output.

$(OUT)/series/ holds `status` (built / absent / failed, and why), `build.log`,
`tests.h` (SERIES_TEST(name, fn) lines), `subtests.txt` ("test/subtest" lines)
and `runner`. The runner (series/runner.c) prints

    RUN <test>[/<subtest>]
    ... the test's output ...
    RESULT <test>[/<subtest>] PASS|FAIL|SKIP <seconds> [key=value ...]

and parse_runner_output() turns that into one Outcome per name, with the
lines printed while it was the innermost one running as its log. A RUN
without a RESULT is where the runner died.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

_RUN = re.compile(r"^RUN (?P<name>\S+)$")
_RESULT = re.compile(r"^RESULT (?P<name>\S+) (?P<verdict>PASS|FAIL|SKIP) (?P<seconds>[0-9.]+)(?P<rest>.*)$")
_SERIES_TEST = re.compile(r"^SERIES_TEST\((?P<name>\w+), (?P<fn>\w+)\)$")


class BuildState(Enum):
    BUILT = "built"
    ABSENT = "absent"   # no KSRC, or a KSRC without the series' tests: skip
    FAILED = "failed"   # the build broke: fail
    MISSING = "missing"  # no status file at all: the helpers were not built with this Makefile


@dataclass(frozen=True, kw_only=True)
class SeriesBuild:
    directory: Path | None
    state: BuildState
    reason: str
    tests: tuple[str, ...] = ()
    subtests: tuple[str, ...] = ()  # "test/subtest"

    @property
    def runner(self) -> Path:
        assert self.directory is not None
        return self.directory / "runner"

    def build_log(self, tail: int = 80) -> str:
        if self.directory is None:
            return ""
        try:
            lines = (self.directory / "build.log").read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no build.log: {e})"
        return "\n".join(lines[-tail:])

    @classmethod
    def load(cls, guest_bin: Path | None) -> SeriesBuild:
        if guest_bin is None:
            return cls(directory=None, state=BuildState.ABSENT,
                       reason="HARNESS_GUEST_BIN is not set (build with make -C guest-tests OUT=...)")
        directory = guest_bin / "series"
        try:
            status = (directory / "status").read_text().strip()
        except OSError:
            return cls(directory=directory, state=BuildState.MISSING,
                       reason=f"{directory}/status is missing: the guest helpers were not built "
                              f"by this guest-tests/Makefile")
        word, _, detail = status.partition(":")
        detail = detail.strip()
        if word == "absent":
            return cls(directory=directory, state=BuildState.ABSENT, reason=detail)
        if word != "built":
            return cls(directory=directory, state=BuildState.FAILED,
                       reason=f"the series selftests did not build ({status})")
        tests = []
        for line in (directory / "tests.h").read_text().splitlines():
            m = _SERIES_TEST.match(line.strip())
            if m:
                tests.append(m["name"])
        subtests = [s.strip() for s in (directory / "subtests.txt").read_text().splitlines()
                    if s.strip()]
        return cls(directory=directory, state=BuildState.BUILT, reason=detail,
                   tests=tuple(tests), subtests=tuple(subtests))


@dataclass(kw_only=True)
class Outcome:
    name: str
    verdict: str | None = None  # PASS, FAIL, SKIP; None: started, never finished
    seconds: float | None = None
    extra: dict[str, str] = field(default_factory=dict)  # key=value after the seconds
    log: list[str] = field(default_factory=list)

    @property
    def log_text(self) -> str:
        return "\n".join(self.log)


@dataclass(kw_only=True)
class RunnerOutput:
    outcomes: dict[str, Outcome]  # in the order they started
    outside: list[str]  # lines printed while nothing was running
    errors: list[str]  # protocol violations

    def subtests_of(self, test: str) -> list[Outcome]:
        return [o for n, o in self.outcomes.items() if n.startswith(test + "/")]

    def died_in(self) -> Outcome | None:
        """The innermost name that started and never finished."""
        unfinished = [o for o in self.outcomes.values() if o.verdict is None]
        return unfinished[-1] if unfinished else None


def parse_runner_output(text: str) -> RunnerOutput:
    outcomes: dict[str, Outcome] = {}
    outside: list[str] = []
    errors: list[str] = []
    stack: list[Outcome] = []
    for line in text.splitlines():
        m = _RUN.match(line)
        if m:
            name = m["name"]
            if name in outcomes:
                errors.append(f"{name} started twice")
            outcome = Outcome(name=name)
            outcomes[name] = outcome
            if "/" not in name:
                stack = [outcome]
            elif stack and name.startswith(stack[0].name + "/"):
                stack = [stack[0], outcome]
            else:
                errors.append(f"subtest {name} started outside its test")
                stack = [outcome]
            continue
        m = _RESULT.match(line)
        if m:
            name = m["name"]
            outcome_or_none = outcomes.get(name)
            if outcome_or_none is None or not stack or stack[-1] is not outcome_or_none:
                errors.append(f"RESULT for {name}, which is not the one running")
                continue
            outcome_or_none.verdict = m["verdict"]
            outcome_or_none.seconds = float(m["seconds"])
            for token in m["rest"].split():
                key, sep, value = token.partition("=")
                if sep:
                    outcome_or_none.extra[key] = value
            stack.pop()
            continue
        if stack:
            stack[-1].log.append(line)
        else:
            outside.append(line)
    return RunnerOutput(outcomes=outcomes, outside=outside, errors=errors)
