"""Self-tests of the runner plugin (guest_runner.py) against plain files, no kernel needed.

Each case runs an inner pytest in a child process whose conftest registers a
RunnerPlugin with /dev/kmsg, the sysrq trigger and lockdep_stats pointed at files
under tmp_path, so nothing reaches the real kernel log. These run on the host
(`pytest guest-tests/selftests`): a child interpreter costs half a minute under TCG.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from guest_runner import read_debug_locks
from harness import protocol

GUEST_TESTS = Path(__file__).resolve().parent.parent

INNER_CONFTEST = """
import sys
from pathlib import Path

sys.path.insert(0, {guest_tests!r})
from guest_runner import KernelPaths, RunnerPlugin, Settings

def pytest_configure(config):
    paths = KernelPaths(
        kmsg=Path({kmsg!r}),
        sysrq_trigger=Path({sysrq!r}),
        lockdep_stats=Path({lockdep!r}),
    )
    settings = Settings(timeout_scale={scale!r}, repeat={repeat!r},
                        repeat_seconds={repeat_seconds!r}, stress_scale={stress!r},
                        results_file=Path({results!r}))
    config.pluginmanager.register(RunnerPlugin(settings=settings, paths=paths))
"""

INNER_TESTS = """
import pytest

def test_pass():
    pass

def test_fail():
    assert False

@pytest.mark.skip(reason="no")
def test_skip():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("setup")

def test_error(broken):
    pass

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")

def test_teardown_error(broken_teardown):
    pass

@pytest.mark.expect_finding("WARNING")
@pytest.mark.expect_finding("SOFT_LOCKUP", "RCU_STALL")
@pytest.mark.parametrize("arg", ["a b"])
def test_expect(arg):
    pass
"""

INNER_HANG = """
import threading
import pytest

@pytest.mark.timeout_s(1)
def test_hangs():
    threading.Event().wait(60)
"""


@dataclass(frozen=True, kw_only=True)
class Inner:
    """An inner pytest project and the files its plugin writes to."""

    root: Path
    kmsg: Path
    sysrq: Path
    lockdep: Path
    results: Path

    def records(self) -> list[protocol.GuestResult]:
        records, problems = protocol.read_results(self.results)
        assert not problems
        return records

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(self.root)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def markers(self) -> list[str]:
        return self.kmsg.read_text().splitlines()


def make_inner(tmp_path: Path, tests: str, *, lockdep: str | None, scale: float = 1.0,
               repeat: int | None = None, repeat_seconds: float | None = None,
               stress: float = 1.0) -> Inner:
    root = tmp_path / "inner"
    root.mkdir()
    inner = Inner(
        root=root,
        kmsg=tmp_path / "kmsg",
        sysrq=tmp_path / "sysrq-trigger",
        lockdep=tmp_path / "lockdep_stats",
        results=tmp_path / "guest.results.jsonl",
    )
    inner.kmsg.touch()
    inner.sysrq.touch()
    if lockdep is not None:
        inner.lockdep.write_text(lockdep)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(
        INNER_CONFTEST.format(
            guest_tests=str(GUEST_TESTS),
            kmsg=str(inner.kmsg),
            sysrq=str(inner.sysrq),
            lockdep=str(inner.lockdep),
            scale=scale,
            repeat=repeat,
            repeat_seconds=repeat_seconds,
            stress=stress,
            results=str(tmp_path / "guest.results.jsonl"),
        )
    )
    (root / "test_inner.py").write_text(textwrap.dedent(tests))
    return inner


def test_markers_around_each_test(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, INNER_TESTS, lockdep=" lock-classes: 12\n debug_locks:   1\n")
    result = inner.run()
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert inner.markers() == [
        "<5>harness: BEGIN test_inner.py::test_pass budget=30",
        "<5>harness: END test_inner.py::test_pass outcome=passed debug_locks=1",
        "<5>harness: BEGIN test_inner.py::test_fail budget=30",
        "<5>harness: END test_inner.py::test_fail outcome=failed debug_locks=1",
        "<5>harness: BEGIN test_inner.py::test_skip budget=30",
        "<5>harness: END test_inner.py::test_skip outcome=skipped debug_locks=1",
        "<5>harness: BEGIN test_inner.py::test_error budget=30",
        "<5>harness: END test_inner.py::test_error outcome=error debug_locks=1",
        "<5>harness: BEGIN test_inner.py::test_teardown_error budget=30",
        "<5>harness: END test_inner.py::test_teardown_error outcome=error debug_locks=1",
        "<5>harness: BEGIN test_inner.py::test_expect[a_b] budget=30",
        "<5>harness: EXPECT test_inner.py::test_expect[a_b] SOFT_LOCKUP",
        "<5>harness: EXPECT test_inner.py::test_expect[a_b] RCU_STALL",
        "<5>harness: EXPECT test_inner.py::test_expect[a_b] WARNING",
        "<5>harness: END test_inner.py::test_expect[a_b] outcome=passed debug_locks=1",
    ]


def test_results_file_has_every_test_with_its_exact_nodeid(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, INNER_TESTS + INNER_PROPERTY,
                       lockdep=" debug_locks:   1\n")
    inner.run()
    got = {r.nodeid: r for r in inner.records()}
    assert {k: r.outcome for k, r in got.items()} == {
        "test_inner.py::test_pass": "passed", "test_inner.py::test_fail": "failed",
        "test_inner.py::test_skip": "skipped", "test_inner.py::test_error": "error",
        "test_inner.py::test_teardown_error": "error",
        # the exact nodeid, space and all; markers carry the mangled one
        "test_inner.py::test_expect[a b]": "passed",
        "test_inner.py::test_property": "passed",
    }
    assert got["test_inner.py::test_expect[a b]"].marker_id == "test_inner.py::test_expect[a_b]"
    assert "assert False" in got["test_inner.py::test_fail"].message
    assert got["test_inner.py::test_skip"].message == "Skipped: no"
    assert "RuntimeError: setup" in got["test_inner.py::test_error"].message
    assert got["test_inner.py::test_property"].properties == {"outcomes": '{"ok": 3}'}
    assert got["test_inner.py::test_pass"].message == ""
    assert all(r.round is None for r in got.values())


INNER_PROPERTY = """
def test_property(record_property):
    record_property("outcomes", '{"ok": 3}')
"""

INNER_BUDGET = """
import pytest

@pytest.mark.timeout_s(40)
def test_declared(budget):
    print(f"BUDGET {budget.seconds:g} {budget.remaining():.0f}")

def test_default(budget):
    print(f"BUDGET {budget.seconds:g} {budget.remaining():.0f}")
"""


def test_budget_scales_with_accel_and_stress_and_travels_in_begin(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, INNER_BUDGET, lockdep=None, scale=4.0, stress=2.5)
    result = inner.run()
    assert result.returncode == 0, result.stdout
    begins = [m for m in inner.markers() if " BEGIN " in m]
    # 40 s declared x4 (TCG) x2.5 (stress); the default 30 s likewise
    assert begins == ["<5>harness: BEGIN test_inner.py::test_declared budget=400",
                      "<5>harness: BEGIN test_inner.py::test_default budget=300"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s",
                          str(inner.root)], cwd=inner.root, capture_output=True, text=True,
                         timeout=120, check=False)
    budgets = [(float(m[1]), float(m[2]))
               for m in re.finditer(r"BUDGET (\S+) (\S+)", run.stdout)]
    # remaining() leaves the helper margin (5 s x4) before the watchdog
    assert budgets == [(400.0, 380.0), (300.0, 280.0)]


def test_unknown_finding_kind_is_a_usage_error(tmp_path: Path) -> None:
    tests = """
        import pytest

        @pytest.mark.expect_finding("OOPS")
        def test_x():
            pass
        """
    inner = make_inner(tmp_path, tests, lockdep=None)
    result = inner.run()
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "unknown expect_finding kind ['OOPS']" in result.stderr
    assert inner.markers() == []


def test_watchdog_writes_timeout_and_exits_124(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, INNER_HANG, lockdep=None, scale=0.5)
    result = inner.run()
    assert result.returncode == 124, result.stdout + result.stderr
    assert inner.markers() == [
        "<5>harness: BEGIN test_inner.py::test_hangs budget=0.5",
        "<5>harness: TIMEOUT test_inner.py::test_hangs after=0.5",
    ]
    # 'w' then 'd', one write each; a plain file keeps the last.
    assert inner.sysrq.read_text() == "d"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (" chain lookup hits:   7\n debug_locks:                             1\n", "1"),
        (" debug_locks:                             0\n", "0"),
        (" lock-classes:  12\n", "na"),
        (None, "na"),
    ],
    ids=["on", "off", "no-line", "no-file"],
)
def test_read_debug_locks(tmp_path: Path, content: str | None, expected: str) -> None:
    stats = tmp_path / "lockdep_stats"
    if content is not None:
        stats.write_text(content)
    assert read_debug_locks(stats) == expected


# Reproduce mode: the kernel log is a plain file the inner tests append to
INNER_ROUNDS = """
import time
from pathlib import Path

ROUND = [0]
KMSG = Path({kmsg!r})

def test_a():
    ROUND[0] += 1
    n = ROUND[0]
    if n == {report_in!r}:
        with KMSG.open("a") as f:
            f.write("4,900,123456,-;WARNING: possible circular locking dependency detected\\n")
    assert n != {fail_in!r}, "scenario failed"

def test_b():
    time.sleep(0.02)   # a round takes longer than the budget test's budget
"""


def rounds_of(inner: Inner, *, report_in: int | None = None, fail_in: int | None = None,
              ) -> list[str]:
    (inner.root / "test_inner.py").write_text(INNER_ROUNDS.format(
        kmsg=str(inner.kmsg), report_in=report_in, fail_in=fail_in))
    inner.run()
    return [m for m in inner.markers() if "ROUND" in m or "REPRO" in m]


def test_repeat_runs_every_round_when_clean(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, "", lockdep=None, repeat=3)
    assert rounds_of(inner) == ["<5>harness: ROUND 1", "<5>harness: ROUND 2",
                                "<5>harness: ROUND 3",
                                "<5>harness: REPRO DONE rounds=3 all 3 rounds clean"]
    begins = [m for m in inner.markers() if "BEGIN" in m]
    assert len(begins) == 6 and begins[:2] == ["<5>harness: BEGIN test_inner.py::test_a budget=30",
                                               "<5>harness: BEGIN test_inner.py::test_b budget=30"]
    # one result line per test and round, numbered
    assert [(r.nodeid.split("::")[1], r.round) for r in inner.records()] == [
        (name, n) for n in (1, 2, 3) for name in ("test_a", "test_b")]


def test_repeat_stops_at_the_first_kernel_report(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, "", lockdep=None, repeat=0)
    assert rounds_of(inner, report_in=2) == [
        "<5>harness: ROUND 1", "<5>harness: ROUND 2",
        "<5>harness: REPRO DONE rounds=2 kernel report: "
        "WARNING: possible circular locking dependency detected"]


def test_repeat_stops_at_the_first_failed_test(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, "", lockdep=None, repeat=5)
    assert rounds_of(inner, fail_in=3)[-1] == "<5>harness: REPRO DONE rounds=3 a test failed"


def test_repeat_keeps_within_its_time_budget(tmp_path: Path) -> None:
    inner = make_inner(tmp_path, "", lockdep=None, repeat=0, repeat_seconds=0.01)
    assert rounds_of(inner)[-1] == "<5>harness: REPRO DONE rounds=1 time budget of 0.01s spent"
