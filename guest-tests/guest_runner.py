"""In-guest runner plugin: /dev/kmsg markers around every test and a per-test watchdog.

The host's log scanner attributes each kernel report to the test whose marker precedes
it, so the line formats written here are a protocol (see README.md). Every marker is
one write() on a freshly opened /dev/kmsg: the kernel rate-limits writers per open
file (10 lines per 5 s unless printk_devkmsg=on), and a new file starts a new budget.

conftest.py registers RunnerPlugin.from_env(); the self-tests build one with paths
of their own.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The protocol is defined once, in harness/protocol.py (stdlib only): the
# repository is on the guest's filesystem, read-only, as on the host.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import protocol  # noqa: E402

from kmsg import KmsgFollower  # noqa: E402

FINDING_KINDS = frozenset(protocol.FINDING_KINDS)
DEFAULT_TEST_TIMEOUT_S = protocol.DEFAULT_BUDGET_S
TIMEOUT_EXIT_CODE = 124
# /proc/sysrq-trigger keys sent when a test times out: blocked tasks, then held locks.
SYSRQ_ON_TIMEOUT = ("w", "d")

_WHITESPACE = re.compile(r"\s")
marker_nodeid = protocol.marker_nodeid

MARKER_HELP = (
    "expect_finding(*kinds, title=None): the test provokes a kernel report of these kinds "
    f"({', '.join(sorted(FINDING_KINDS))}), whose title starts with `title` when given; "
    "written as EXPECT markers",
    "timeout_s(seconds): per-test watchdog budget before HARNESS_TIMEOUT_SCALE "
    f"(default HARNESS_TEST_TIMEOUT or {DEFAULT_TEST_TIMEOUT_S:g})",
)


def in_virtme_guest(cmdline: Path = Path("/proc/cmdline")) -> bool:
    """virtme-ng passes virtme_* parameters on the kernel command line."""
    try:
        return any(arg.startswith("virtme_") for arg in cmdline.read_text().split())
    except OSError:
        return False


def read_debug_locks(lockdep_stats: Path) -> str:
    """'1' or '0' from the 'debug_locks:' line of /proc/lockdep_stats, 'na' without lockdep."""
    try:
        text = lockdep_stats.read_text()
    except OSError:
        return "na"
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "debug_locks":
            return "1" if value.strip() not in ("", "0") else "0"
    return "na"


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise pytest.UsageError(f"{name}={raw!r} must be > 0")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the host passes in through the environment."""

    test_timeout_s: float = DEFAULT_TEST_TIMEOUT_S
    timeout_scale: float = 1.0
    guest_bin: Path | None = None
    kernel_release: str | None = None
    # reproduce mode: run the selection this many rounds (0: until the first
    # finding), stopping at the first kernel report or failed test
    repeat: int | None = None
    repeat_seconds: float | None = None   # and stop starting rounds after this long
    # HARNESS_STRESS_SCALE: round counts are multiplied by this, and so are budgets
    stress_scale: float = 1.0
    # HARNESS_RESULTS_FILE: where each test's result goes, one JSON line each
    results_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        guest_bin = env.get("HARNESS_GUEST_BIN", "").strip()
        release = env.get("HARNESS_KERNEL_RELEASE", "").strip()
        repeat = env.get("HARNESS_REPEAT", "").strip()
        if repeat and (not repeat.isdigit()):
            raise pytest.UsageError(f"HARNESS_REPEAT={repeat!r}: a round count >= 0 (0: until a finding)")
        return cls(
            test_timeout_s=_positive_float(env, "HARNESS_TEST_TIMEOUT", DEFAULT_TEST_TIMEOUT_S),
            timeout_scale=_positive_float(env, "HARNESS_TIMEOUT_SCALE", 1.0),
            guest_bin=Path(guest_bin) if guest_bin else None,
            kernel_release=release or None,
            repeat=int(repeat) if repeat else None,
            repeat_seconds=(_positive_float(env, "HARNESS_REPEAT_SECONDS", 1.0)
                            if env.get("HARNESS_REPEAT_SECONDS", "").strip() else None),
            stress_scale=_positive_float(env, "HARNESS_STRESS_SCALE", 1.0),
            results_file=(Path(env["HARNESS_RESULTS_FILE"])
                          if env.get("HARNESS_RESULTS_FILE", "").strip() else None),
        )


@dataclass(frozen=True, kw_only=True)
class KernelPaths:
    """Kernel interfaces the plugin touches; self-tests point them at plain files."""

    kmsg: Path = Path("/dev/kmsg")
    sysrq_trigger: Path = Path("/proc/sysrq-trigger")
    lockdep_stats: Path = Path("/proc/lockdep_stats")


class KmsgWriter:
    """Writes 'harness: ...' lines to /dev/kmsg; does nothing if it is not writable."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.enabled = os.access(path, os.W_OK)

    def emit(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"<5>harness: {text}\n".encode(errors="replace")
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            self.enabled = False
            return
        try:
            os.write(fd, line)
        except OSError:
            pass
        finally:
            os.close(fd)


class Watchdog:
    """One thread; arm() sets a deadline for the current test, disarm() clears it.

    on_expiry(nodeid, seconds) runs in the watchdog thread and is expected not to
    return (it ends the process); if it does return, the watchdog stops.
    """

    def __init__(self, on_expiry: Callable[[str, float], None]) -> None:
        self._on_expiry = on_expiry
        self._cond = threading.Condition()
        self._armed: tuple[str, float, float] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, nodeid: str, seconds: float) -> None:
        with self._cond:
            self._armed = (nodeid, time.monotonic() + seconds, seconds)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="harness-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._armed is None:
                    self._cond.wait()
                    continue
                nodeid, deadline, seconds = self._armed
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        self._on_expiry(nodeid, seconds)


def _expected_kinds(item: pytest.Item) -> list[str]:
    """EXPECT marker payloads: "KIND" or "KIND title words"."""
    kinds: list[str] = []
    for mark in item.iter_markers("expect_finding"):
        title = mark.kwargs.get("title")
        for kind in mark.args:
            entry = f"{kind} {_WHITESPACE.sub(' ', title).strip()}" if title else kind
            if entry not in kinds:
                kinds.append(entry)
    return kinds


def _outcome(reports: list[pytest.TestReport]) -> str:
    """passed|failed|skipped|error for one test from its setup/call/teardown reports."""
    outcome = "error"
    for report in reports:
        if report.when == "setup":
            if report.failed:
                return "error"
            if report.skipped:
                return "skipped"
        elif report.when == "call":
            outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
        elif report.when == "teardown" and report.failed and outcome == "passed":
            outcome = "error"
    return outcome


def _message(reports: list[pytest.TestReport]) -> str:
    """Why a test did not pass: the failing phase's report, or the skip reason."""
    for report in reports:
        if report.failed:
            return f"{report.when}: {report.longreprtext}"[-4000:]
        if report.skipped:
            longrepr = report.longrepr
            if isinstance(longrepr, tuple) and len(longrepr) == 3:
                return str(longrepr[2])
            return report.longreprtext[-1000:]
    return ""


@dataclass(frozen=True)
class Budget:
    """A test's time: `seconds` is its whole watchdog budget (scaled); helpers
    it runs take remaining() as their deadline, which ends `margin` seconds
    before the watchdog would fire, so a helper that overruns is killed and
    reported by the test, with its output, instead of the watchdog ending pytest."""

    seconds: float
    started: float          # time.monotonic() when the watchdog was armed
    margin: float

    def remaining(self) -> float:
        left = self.started + self.seconds - self.margin - time.monotonic()
        return max(1.0, left)


@dataclass(kw_only=True)
class RunnerPlugin:
    settings: Settings
    paths: KernelPaths = KernelPaths()
    exit: Callable[[int], None] = os._exit
    _kmsg: KmsgWriter = field(init=False)
    _watchdog: Watchdog = field(init=False)
    _reports: dict[str, list[pytest.TestReport]] = field(init=False, default_factory=dict)
    _budgets: dict[str, Budget] = field(init=False, default_factory=dict)
    _round: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._kmsg = KmsgWriter(self.paths.kmsg)
        self._watchdog = Watchdog(self._timed_out)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerPlugin:
        return cls(settings=Settings.from_env(env))

    def timeout_for(self, item: pytest.Item) -> float:
        """The test's whole budget in seconds: declared or default, scaled."""
        mark = item.get_closest_marker("timeout_s")
        declared = float(mark.args[0]) if mark and mark.args else None
        return protocol.budget_for(declared, default_s=self.settings.test_timeout_s,
                                   timeout_scale=self.settings.timeout_scale,
                                   stress_scale=self.settings.stress_scale)

    def _timed_out(self, nodeid: str, seconds: float) -> None:
        self._kmsg.emit(protocol.timeout(nodeid, seconds))
        for key in SYSRQ_ON_TIMEOUT:
            try:
                self.paths.sysrq_trigger.write_text(key)
            except OSError:
                break
        sys.stdout.flush()
        sys.stderr.flush()
        self.exit(TIMEOUT_EXIT_CODE)

    # pytest hooks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """Reproduce mode (HARNESS_REPEAT): the selection in rounds, with a ROUND
        marker before each, until the count is done, a test fails or the kernel
        reports something; REPRO DONE says how it ended."""
        rounds = self.settings.repeat
        if rounds is None or session.config.option.collectonly:
            return None
        if session.testsfailed:
            return None     # collection errors: let pytest report them
        try:
            watch: KmsgFollower | None = KmsgFollower(self.paths.kmsg)
        except OSError:
            watch = None    # no readable kernel log (a host): rounds end on failures only
        done, reason = 0, f"all {rounds} rounds clean" if rounds else "stopped"
        budget = self.settings.repeat_seconds
        started = time.monotonic()
        while rounds == 0 or done < rounds:
            done += 1
            self._round = done
            self._kmsg.emit(protocol.round_start(done))
            failed_before = session.testsfailed
            for i, item in enumerate(session.items):
                nextitem = session.items[i + 1] if i + 1 < len(session.items) else None
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                if session.shouldfail or session.shouldstop:
                    break
            reports = [m for m in watch.new_messages() if protocol.starts_report(m)] if watch else []
            if reports:
                reason = f"kernel report: {reports[0]}"
                break
            if session.testsfailed > failed_before:
                reason = "a test failed"
                break
            if session.shouldfail or session.shouldstop:
                reason = "pytest stopped"
                break
            if budget is not None and time.monotonic() - started >= budget:
                reason = f"time budget of {budget:g}s spent"
                break
        self._kmsg.emit(protocol.repro_done(done, reason))
        if watch:
            watch.close()
        return True

    def pytest_configure(self, config: pytest.Config) -> None:
        for line in MARKER_HELP:
            config.addinivalue_line("markers", line)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            unknown = [k for k in _expected_kinds(item) if k.split()[0] not in FINDING_KINDS]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: unknown expect_finding kind {unknown}")
            mark = item.get_closest_marker("timeout_s")
            if mark and (len(mark.args) != 1 or not float(mark.args[0]) > 0):
                raise pytest.UsageError(f"{item.nodeid}: timeout_s takes one positive number")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        nodeid = marker_nodeid(item.nodeid)
        self._reports[item.nodeid] = []
        budget = self.timeout_for(item)
        self._kmsg.emit(protocol.begin(item.nodeid, budget))
        for kind in _expected_kinds(item):
            word, _, title = kind.partition(" ")
            self._kmsg.emit(protocol.expect(item.nodeid, word, title or None))
        self._budgets[item.nodeid] = Budget(
            seconds=budget, started=time.monotonic(),
            margin=protocol.HELPER_MARGIN_S * self.settings.timeout_scale)
        self._watchdog.arm(nodeid, budget)
        try:
            return (yield)
        finally:
            self._watchdog.disarm()
            self._budgets.pop(item.nodeid, None)
            reports = self._reports.pop(item.nodeid, [])
            outcome = _outcome(reports)
            self._record(item.nodeid, outcome, reports)
            debug_locks = read_debug_locks(self.paths.lockdep_stats)
            self._kmsg.emit(protocol.end(item.nodeid, outcome, debug_locks))

    def _record(self, nodeid: str, outcome: str, reports: list[pytest.TestReport]) -> None:
        """Appends the test's result line: the host reads these, not JUnit."""
        if self.settings.results_file is None:
            return
        props: dict[str, object] = {}
        for report in reports:
            for key, value in report.user_properties:
                props[str(key)] = value
        record = protocol.GuestResult(nodeid=nodeid, outcome=outcome,
                                      seconds=sum(r.duration for r in reports),
                                      message=_message(reports) if outcome != "passed" else "",
                                      round=self._round, properties=props)
        try:
            with open(self.settings.results_file, "a", encoding="utf-8") as out:
                out.write(record.to_line())
        except OSError as exc:
            sys.stderr.write(f"harness: cannot write {self.settings.results_file}: {exc}\n")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid in self._reports:
            self._reports[report.nodeid].append(report)

    # fixtures

    @pytest.fixture
    def guest_bin(self) -> Path:
        """Directory of helpers built by `make -C guest-tests OUT=...` (HARNESS_GUEST_BIN)."""
        if self.settings.guest_bin is None:
            pytest.skip("HARNESS_GUEST_BIN is not set (build with make -C guest-tests OUT=...)")
        return self.settings.guest_bin

    @pytest.fixture
    def kernel_release_expected(self) -> str | None:
        """HARNESS_KERNEL_RELEASE, the release the host built; None when unset."""
        return self.settings.kernel_release

    @pytest.fixture
    def budget(self, request: pytest.FixtureRequest) -> Budget:
        """This test's time budget; helpers take budget.remaining() as their deadline."""
        found = self._budgets.get(request.node.nodeid)
        if found is None:   # outside the runner's protocol (a plugin self-test)
            found = Budget(seconds=self.timeout_for(request.node), started=time.monotonic(),
                           margin=protocol.HELPER_MARGIN_S * self.settings.timeout_scale)
        return found

    @pytest.fixture
    def stress_scale(self) -> float:
        """HARNESS_STRESS_SCALE: multiply stress round counts by this (budgets already are)."""
        return self.settings.stress_scale

    @pytest.fixture
    def timeout_scale(self) -> float:
        """HARNESS_TIMEOUT_SCALE: multiply every wait on the kernel by this."""
        return self.settings.timeout_scale
