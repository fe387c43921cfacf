"""The edit loop: a kept-alive guest (make guest), guest tests run in it over
SSH (make retest), with the same markers, log scan, judge and report as a
boot, and its end (make guest-stop).  keptguest.py is the mechanism (its model in
kept_model.py); this module is what the command line does with it.

A retest rebuilds the guest programs first (make -C guest-tests, seconds
when little changed: an edited C helper is picked up), runs the suite's guest
script over SSH while holding the cpu lock, cuts the part of the guest's
console written meanwhile out of its console log, and judges it as a boot
would.  The kernel must be the one the guest booted: a rebuilt bzImage, a
guest that died or hung, or one tainted by a hang refuses to retest and says
to restart the guest.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import kept_model, keptguest, protocol
from .accel import AccelChoice
from .errors import HarnessError, UsageError
from .guest import GuestEnv, guest_build_argv, guest_script
from .layout import Layout, cpu_lock
from .logscan import scan_console
from .procs import Runner
from .report import finish_run
from .results import RunResult, StageResult, Status
from .suites import TOTAL_S, Suite
from .verdict import judge_boot
from .vm import Accel, TIMEOUT_SCALE, VmOutcome, VmStatus

ACCEL_FILE = "accel.json"   # in the state directory: how the guest was booted


class GuestFailure(HarnessError):
    """The kept guest is missing, dead, stale or would not start (exit 2)."""


def state_dir(layout: Layout) -> Path:
    checkout = hashlib.sha256(str(layout.repo.resolve()).encode()).hexdigest()[:10]
    return kept_model.default_state_dir(layout.cache, checkout)


def bzimage(layout: Layout) -> Path:
    return layout.build_dir("default") / "arch/x86/boot/bzImage"


def kept_results_root(layout: Layout) -> Path:
    """Shared read-write with the kept guest: each retest's results go below it."""
    return layout.results_root / "kept"


def start_guest(layout: Layout, choice: AccelChoice, *, vng: str, python: str,
                append: tuple[str, ...], say: Callable[[str], None]) -> keptguest.KeptGuest:
    kernel = bzimage(layout)
    if not kernel.exists():
        raise UsageError(f"{kernel} does not exist: run `make build` (or `make run`) first")
    root = kept_results_root(layout)
    root.mkdir(parents=True, exist_ok=True)
    spec = kept_model.GuestSpec(kernel=kernel, vng=vng, python=python, append=append,
                                kvm=choice.accel is Accel.KVM, rwdirs=(root,),
                                cached_dirs=kept_model.python_cache_dirs())
    bounds = kept_model.Bounds()
    if choice.accel is Accel.KVM:
        bounds = bounds.scaled(1 / TIMEOUT_SCALE[Accel.TCG])
    where = state_dir(layout)
    for attempt in (1, 2):
        try:
            guest = keptguest.start(spec, where, say, bounds=bounds,
                                    lock=lambda: cpu_lock(layout.cpu_lock, say))
            break
        except kept_model.StartFailed as exc:
            # a rare TCG early-boot crash: one more boot, as the pipeline does
            if attempt == 1 and exc.cause is kept_model.StartCause.BOOT_FAILED:
                say(f"guest: the kernel failed while booting ({exc}); retrying once")
                continue
            raise GuestFailure(_with_tail(exc)) from exc
        except kept_model.KeptGuestError as exc:
            raise GuestFailure(_with_tail(exc)) from exc
    (where / ACCEL_FILE).write_text(json.dumps({"accel": choice.accel.value,
                                                "why": choice.why}))
    say(f"guest: {choice.accel.value} ({choice.why}); `make retest [ONLY=...]` runs tests in "
        "it, `make guest-stop` ends it")
    return guest


def stop_guest(layout: Layout, say: Callable[[str], None]) -> bool:
    try:
        return keptguest.stop(state_dir(layout), say)
    except kept_model.KeptGuestError as exc:
        raise GuestFailure(_with_tail(exc)) from exc


def _with_tail(exc: kept_model.KeptGuestError) -> str:
    tail = getattr(exc, "console_tail", "")
    return f"{exc}" + (f"\nlast console lines:\n{tail}" if tail else "")


def load_usable(layout: Layout, append: tuple[str, ...] | None = None) -> keptguest.KeptGuest:
    """The kept guest, alive and running the kernel a boot would use; else why not."""
    try:
        guest = keptguest.KeptGuest.load(state_dir(layout))
    except kept_model.KeptGuestError as exc:
        raise GuestFailure(str(exc)) from exc
    if guest is None:
        raise UsageError("no kept guest: start one with `make guest`")
    problem = guest.problem()
    if problem is not None:
        raise GuestFailure(f"the kept guest is not usable: {problem}; "
                           "`make guest-stop && make guest` starts a new one")
    stale = guest.stale_reasons(kernel=bzimage(layout), append=append)
    if stale:
        raise GuestFailure("the kept guest would not test what a boot would: "
                           + "; ".join(stale) + "; `make guest-stop && make guest`")
    return guest


def _scale(layout: Layout) -> float:
    try:
        accel = json.loads((state_dir(layout) / ACCEL_FILE).read_text())["accel"]
        return TIMEOUT_SCALE[Accel(accel)]
    except (OSError, ValueError, KeyError):
        return TIMEOUT_SCALE[Accel.TCG]


@dataclass
class _Progress:
    """Reads the markers as the console brings them: progress lines, and the
    running window's budget for the host's idle deadline."""

    say: Callable[[str], None]
    scale: float
    start: float
    window_budget: float | None = None
    in_window: bool = False

    def idle_timeout(self) -> float:
        if self.in_window:
            return protocol.window_deadline(self.window_budget, self.scale)
        return protocol.IDLE_S * self.scale

    def console(self, line: str) -> None:
        """One whole console line (keptguest hands them over one at a time)."""
        marker = protocol.parse_marker(line.rstrip("\r\n"))
        if marker is None:
            return
        if marker.verb == "BEGIN":
            self.in_window, self.window_budget = True, protocol.marker_budget(marker)
            self.say(f"retest: [{time.monotonic() - self.start:5.0f}s] {marker.nodeid}")
        elif marker.verb in ("END", "TIMEOUT"):
            self.in_window = False
            outcome = marker.fields.get("outcome", "timed out")
            if outcome != "passed":
                self.say(f"retest:          {marker.nodeid}: {outcome}")


def retest(layout: Layout, runner: Runner, *, selection: tuple[str, ...], python: Path,
           stress_env: tuple[tuple[str, str], ...], test_timeout: float | None,
           append: tuple[str, ...], say: Callable[[str], None]) -> RunResult:
    guest = load_usable(layout, append)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    results = kept_results_root(layout) / f"{stamp}-retest"
    if not guest.writable(results):
        raise GuestFailure(f"{results} is not shared with the kept guest (it booted with "
                           f"{', '.join(guest.state.rwdirs)}): `make guest-stop && make guest`")
    results.mkdir(parents=True, exist_ok=True)
    run = RunResult(results_dir=str(results))
    run.info.update({"kernel_release": guest.state.release, "kept_guest": str(guest.state_dir)})
    scale = _scale(layout)
    run.info["timeout_scale"] = scale
    try:
        _retest(layout, runner, guest, run, results, selection=selection, python=python,
                stress_env=stress_env, test_timeout=test_timeout, scale=scale, say=say)
    finally:
        finish_run(run, results)
    return run


def _retest(layout: Layout, runner: Runner, guest: keptguest.KeptGuest, run: RunResult,
            results: Path, *, selection: tuple[str, ...], python: Path,
            stress_env: tuple[tuple[str, str], ...], test_timeout: float | None, scale: float,
            say: Callable[[str], None]) -> None:
    build = layout.build_dir("default")
    guest_bin = layout.guest_build_dir("default")
    t0 = time.monotonic()
    stage = StageResult(name="guest-build", status=Status.PASS, seconds=0.0, detail=str(guest_bin))
    run.stages.append(stage)
    try:
        runner.run(guest_build_argv(layout.guest_tests, guest_bin, build, layout.source),
                   log_path=results / "guest-build.log")
    except HarnessError as exc:
        stage.status, stage.detail = Status.ERROR, f"{type(exc).__name__}: {exc}"
        return
    finally:
        stage.seconds = time.monotonic() - t0
    suite = Suite(name="retest", selection=selection or (".",), env=stress_env)
    env = GuestEnv(repo=layout.repo, python=python, guest_bin=guest_bin,
                   kernel_release=guest.state.release, timeout_scale=scale,
                   test_timeout=test_timeout)
    script = results / f"{suite.name}.guest.sh"
    script.write_text(guest_script(suite, env, results))
    t0 = time.monotonic()
    stage = StageResult(name="retest", status=Status.PASS, seconds=0.0)
    run.stages.append(stage)
    progress = _Progress(say=say, scale=scale, start=t0)
    window = guest.run_window(f"sh {script}", on_line=lambda line: None,
                              idle_timeout=progress.idle_timeout,
                              total_timeout=TOTAL_S * scale, on_console=progress.console,
                              done_marker=protocol.PREFIX + "GUEST DONE",
                              lock=lambda: cpu_lock(layout.cpu_lock, say))
    stage.seconds = time.monotonic() - t0
    console = results / f"{suite.name}.console.log"
    console.write_text(window.console)
    outcome = _outcome(window, console)
    scan = scan_console(window.console)
    records, problems = protocol.read_results(protocol.results_file(results, suite.name))
    tests, findings = judge_boot(suite, records, scan, outcome)
    run.tests += tests
    run.findings += findings
    stage.data = {"vm": outcome.status.value, "exit_code": outcome.exit_code,
                  **({"results_problems": problems} if problems else {})}
    bad = [t for t in tests if not t.status.ok]
    stage.detail = (f"{outcome.status.value} in {stage.seconds:.0f}s, "
                    f"{len(tests) - len(bad)}/{len(tests)} ok")
    if window.error is not None:
        stage.detail += f": {window.error}"
    if bad:
        stage.status = (Status.ERROR if any(t.status is Status.ERROR for t in bad)
                        else Status.FAIL)
    if findings and any(not f.expected for f in findings):
        # a kernel report may have disarmed lockdep for the rest of this guest's life
        guest.mark_tainted("a kernel report in retest " + results.name)


def _outcome(window: kept_model.Window, console: Path) -> VmOutcome:
    """A retest's window as the judge knows a boot's VM outcome."""
    err = window.error
    if err is None:
        status, detail = VmStatus.COMPLETED, ""
    elif isinstance(err, kept_model.CommandHung):
        status, detail = VmStatus.HANG, str(err)
    elif isinstance(err, kept_model.GuestDied) and "Kernel panic" in window.console:
        status, detail = VmStatus.PANIC, str(err)
    else:   # died without a panic, or stopped answering: the machine's part
        status, detail = VmStatus.LOST, f"{type(err).__name__}: {err}"
    return VmOutcome(status=status, exit_code=window.exit_code, console_log=console,
                     seconds=window.seconds, boot_seconds=0.0, detail=detail)
