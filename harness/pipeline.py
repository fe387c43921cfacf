"""The run: source -> patches -> config -> build -> boot -> guest tests -> log scan -> report.

Each stage is timed and recorded; a failing stage stops the ones after it
and is reported with its reason.  Everything a run produces lands in one
results directory, printed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from . import build as build_mod
from . import variant as variant_mod
from .guest import (GuestEnv, MAIN_SUITE, Suite, detector_suites, guest_script, negative_suites,
                    read_junit)
from .kconfig import ConfigResult, configure, fragment_files
from .layout import Layout, cpu_lock
from .logscan import Kind, ScanResult, scan_file
from .patches import apply_series
from .procs import Runner
from .report import plain_counts_line, terminal_summary, write_junit, write_summary_json
from .reproduce import summarize
from .results import RunResult, StageResult, Status, TestResult
from .source import prepare_source
from .verdict import judge_boot
from .vm import (Accel, Deadlines, VmOutcome, VmSpec, VmStatus, probe_kvm, run_vm)

DEFAULT_FRAGMENTS = ["base", "debug", "lean"]
# Kernel command line for every boot: more than one KASAN report per boot
# (the self-test provokes several), a large log buffer, no reboot loops, and
# 4-level paging. With LA57 (QEMU's TCG CPU has it) pgtable_l5_enabled() reads
# the LA57 bit of boot_cpu_data until alternatives are patched; identify_cpu()
# zeroes the capabilities before re-reading them, and an interrupt in that
# window makes KASAN's addr_has_metadata() use the 4-level layout for 5-level
# direct-map addresses: "BUG: KASAN: wild-memory-access in do_raw_spin_lock"
# from handle_edge_irq, in about one TCG boot out of 15 (RIP in identify_cpu,
# x86_model or get_cpu_vendor). no5lvl keeps the bit clear from the start.
KERNEL_ARGS = ("kasan_multi_shot", "log_buf_len=8M", "hung_task_panic=0", "softlockup_panic=0",
               "no5lvl")


STRESS_ENV = ("HARNESS_STRESS_SCALE", "HARNESS_STRESS_ROUNDS")


class StageFailed(Exception):
    pass


@dataclass(kw_only=True)
class Options:
    flavour: str = "default"
    fragments: list[str] = field(default_factory=lambda: list(DEFAULT_FRAGMENTS))
    suites: str = "main"          # main, detectors, negative, all
    only: list[str] = field(default_factory=list)  # pytest selection for the main suite
    kernel_src: Path | None = None
    force: bool = False
    accel: str = "auto"           # auto, kvm, tcg
    jobs: int | None = None
    cpus: int = 2
    memory: str = "2G"
    base_test_timeout: float = 30.0   # seconds per guest test under KVM; scaled for TCG
    results_dir: Path | None = None
    build_only: bool = False
    # reproduce mode: the `only` selection in rounds (0: until the first finding)
    repeat: int | None = None
    repeat_minutes: float = 30.0
    variant: str | None = None    # boot kernel-patches/<variant>/ instead of the series


class Pipeline:
    def __init__(self, opts: Options, runner: Runner, layout: Layout,
                 say: Callable[[str], None]) -> None:
        self.opts = opts
        self.runner = runner
        self.layout = layout
        self.say = say
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.results = opts.results_dir or (layout.results_root / f"{stamp}-{opts.suites}")
        self.results.mkdir(parents=True, exist_ok=True)
        self.run = RunResult(results_dir=str(self.results))
        self.vng = str(Path(os.environ.get("VIRTUAL_ENV", layout.repo / ".venv")) / "bin" / "vng")
        self.python = Path(os.environ.get("VIRTUAL_ENV", layout.repo / ".venv")) / "bin" / "python"

    @contextmanager
    def stage(self, name: str) -> Iterator[StageResult]:
        result = StageResult(name=name, status=Status.PASS, seconds=0.0)
        start = time.monotonic()
        self.say(f"== {name}")
        try:
            yield result
        except StageFailed:
            result.status = Status.FAIL if result.status.ok else result.status
            raise
        except Exception as exc:  # every stage error becomes a reported failure
            result.status = Status.ERROR if isinstance(exc, OSError) else Status.FAIL
            result.detail = f"{type(exc).__name__}: {exc}"
            self.say(f"{name}: FAILED: {exc}")
            raise StageFailed(name) from exc
        finally:
            result.seconds = time.monotonic() - start
            self.run.stages.append(result)

    def execute(self) -> RunResult:
        try:
            self._execute()
        except StageFailed:
            pass
        finally:
            self._finish()
        return self.run

    # -- stages ---------------------------------------------------------------

    def _execute(self) -> None:
        opts, runner, layout, say = self.opts, self.runner, self.layout, self.say
        with self.stage("source") as st:
            src = prepare_source(runner, layout, say, opts.kernel_src)
            st.detail = f"Linux {src.version} at {src.path}"
            self.run.info["kernel_version"] = src.version
        # one build directory per source tree: objects of two trees must never
        # share an O= directory
        flavour = opts.flavour
        if src.user_tree:
            flavour += "-" + hashlib.sha256(str(src.path).encode()).hexdigest()[:10]
        build_dir = layout.build_dir(flavour)
        # the lock covers the tree too: another run (or series-check) must not
        # switch the patches under a build
        with cpu_lock(layout.cpu_lock, say):
            with self.stage("patches") as st:
                patched = apply_series(runner, src, layout.patches, say, force=opts.force)
                st.detail = patched.skipped_reason or f"{len(patched.applied)} patch(es) applied"
                st.data = {"applied": patched.applied, "head": patched.head}
                self.run.info["patches"] = len(patched.applied)
            with self.stage("config") as st:
                cfg = self._configure(src.path, build_dir, "kernel.config")
                st.detail = f"{'changed' if cfg.changed else 'unchanged'}, sha256 {cfg.digest[:16]}"
                self.run.info["config_sha256"] = cfg.digest
            with self.stage("build") as st:
                built = self._build(src.path, build_dir, "build.log")
                st.detail = f"{built.release}, {built.objects_built} steps"
                st.data = {"steps": built.objects_built, "release": built.release}
                self.run.info["kernel_release"] = built.release
            with self.stage("guest-build") as st:
                guest_bin = layout.guest_build_dir(flavour)
                guest_bin.mkdir(parents=True, exist_ok=True)
                runner.run(["make", "-C", str(layout.guest_tests), f"OUT={guest_bin}",
                            f"VMLINUX={built.vmlinux}", f"KERNEL_HEADERS={built.headers}/include",
                            f"KSRC={src.path}"],
                           log_path=self.results / "guest-build.log")
                st.detail = str(guest_bin)
            suites = self._suites()
            kernels: dict[str | None, build_mod.BuildResult] = {None: built}
            for name in sorted({s.variant for s in suites if s.variant}):
                kernels[name] = self._build_variant(name, src.path, build_dir, flavour)
        if opts.build_only:
            return
        with self.stage("accel") as st:
            accel, why = self._choose_accel(built.bzimage)
            st.detail = f"{accel.value}: {why}"
            self.run.info["accel"] = accel.value
            self.run.info["accel_reason"] = why
        spec = VmSpec(kernel=built.bzimage, accel=accel, cpus=opts.cpus, memory=opts.memory,
                      append=KERNEL_ARGS, rwdirs=(self.results,),
                      monitor=self.results / "qemu-monitor.sock", vng=self.vng)
        self.run.info["timeout_scale"] = spec.scale
        env = GuestEnv(repo=layout.repo, python=self.python, guest_bin=guest_bin,
                       kernel_release=built.release, timeout_scale=spec.scale,
                       test_timeout=opts.base_test_timeout)
        failed_boots = []
        for suite in suites:
            kernel = kernels[suite.variant]
            try:
                self._boot_suite(suite, replace(spec, kernel=kernel.bzimage),
                                 replace(env, kernel_release=kernel.release))
            except StageFailed:
                failed_boots.append(suite.name)
        if failed_boots:
            raise StageFailed(", ".join(failed_boots))

    def _configure(self, tree: Path, build_dir: Path, keep_as: str) -> ConfigResult:
        """The harness config in build_dir, a copy kept in the results as keep_as."""
        cfg = configure(self.runner, source=tree, build_dir=build_dir,
                        fragments=fragment_files(self.layout.configs, self.opts.fragments),
                        configkernel=str(Path(self.vng).with_name("virtme-configkernel")),
                        say=self.say)
        shutil.copyfile(cfg.config_path, self.results / keep_as)
        return cfg

    def _build(self, tree: Path, build_dir: Path, log_name: str) -> build_mod.BuildResult:
        return build_mod.build_kernel(self.runner, source=tree, build_dir=build_dir,
                                      ccache_dir=self.layout.ccache,
                                      log_path=self.results / log_name, say=self.say,
                                      jobs=self.opts.jobs)

    def _build_variant(self, name: str, tree: Path, series_build: Path,
                       flavour: str) -> build_mod.BuildResult:
        """kernel-patches/<name>/ on top of the series, built incrementally into
        a directory of its own; the tree is back on the series afterwards."""
        layout, say = self.layout, self.say
        with self.stage(f"build:{name}") as st:
            variant = variant_mod.Variant.load(layout.patches / name)
            build_dir = layout.build_dir(f"{flavour}-{name}")
            # a KERNEL_SRC tree skips the series stage, which undoes these otherwise
            variant_mod.recover(self.runner, tree, say)
            seeded = variant_mod.seed_build_dir(series_build, build_dir, say)
            with variant_mod.applied(self.runner, tree, variant, build_dir, say) as paths:
                self._configure(tree, build_dir, f"kernel-{name}.config")
                built = self._build(tree, build_dir, f"build-{name}.log")
            st.detail = (f"{built.release}, {built.objects_built} steps, "
                         f"{len(variant.patches)} patch(es) on the series changing "
                         f"{', '.join(paths)}" + (", seeded from the series build" if seeded else ""))
            st.data = {"steps": built.objects_built, "seeded": seeded, "changed": paths}
        return built

    def _suites(self) -> list[Suite]:
        # the lock-ordering scenarios' round counts, passed on from the host
        stress = tuple((k, os.environ[k]) for k in STRESS_ENV if os.environ.get(k, "").strip())
        if self.opts.repeat is not None:
            return [Suite(name="reproduce", selection=tuple(self.opts.only),
                          repeat=self.opts.repeat, repeat_seconds=60 * self.opts.repeat_minutes,
                          variant=self.opts.variant,
                          env=stress + ((("HARNESS_NEGATIVE", "1"),) if self.opts.variant else ()))]
        main = replace(MAIN_SUITE, env=MAIN_SUITE.env + stress)
        if self.opts.only:
            main = Suite(name="guest", selection=tuple(self.opts.only), env=stress)
        if self.opts.suites == "main":
            return [main]
        if self.opts.suites == "detectors":
            return detector_suites(self.layout)
        if self.opts.suites == "negative":
            return negative_suites(self.layout)
        return [main, *detector_suites(self.layout), *negative_suites(self.layout)]

    def _choose_accel(self, bzimage: Path) -> tuple[Accel, str]:
        if self.opts.accel in ("kvm", "tcg"):
            return Accel(self.opts.accel), "forced by ACCEL"
        cache = self.layout.cache / "kvm-probe.json"
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        if cache.exists():
            data = json.loads(cache.read_text())
            if data.get("boot_id") == boot_id:
                return Accel(data["accel"]), data["why"] + " (probed earlier this host boot)"
        self.say("accel: probing KVM with one short boot (at most 45 s)")
        with cpu_lock(self.layout.cpu_lock, self.say):
            ok, why = probe_kvm(VmSpec(kernel=bzimage, accel=Accel.KVM, vng=self.vng),
                                console_log=self.results / "kvm-probe.console.log", timeout=45,
                                say=self.say)
        accel = Accel.KVM if ok else Accel.TCG
        why = why if ok else f"TCG (software emulation, timeouts x{VmSpec(kernel=bzimage, accel=Accel.TCG).scale:g}): {why}"
        cache.write_text(json.dumps({"boot_id": boot_id, "accel": accel.value, "why": why}))
        return accel, why

    def _boot_suite(self, suite: Suite, spec: VmSpec, env: GuestEnv) -> None:
        with self.stage(f"boot:{suite.name}") as st:
            script = self.results / f"{suite.name}.guest.sh"
            script.write_text(guest_script(suite, env, self.results))
            per_test = self.opts.base_test_timeout * spec.scale
            total = 900 * spec.scale
            if suite.repeat is not None:  # the guest keeps the loop within its budget
                total = suite.repeat_seconds + 60 * spec.scale + per_test + 120
            deadlines = Deadlines(boot=60 * spec.scale, per_test=per_test + 60 * spec.scale,
                                  total=total)
            outcome: VmOutcome | None = None
            for attempt in (1, 2):
                console = self.results / f"{suite.name}.console.log"
                if attempt == 2:
                    console.rename(self.results / f"{suite.name}.console.attempt1.log")
                if spec.monitor is not None:
                    spec.monitor.unlink(missing_ok=True)
                with cpu_lock(self.layout.cpu_lock, self.say):
                    outcome = run_vm(spec, f"sh {script}", console_log=console,
                                     deadlines=deadlines, say=self.say)
                scan = scan_file(console)
                if attempt == 1 and self._boot_broke_before_tests(outcome, scan):
                    self.say(f"boot:{suite.name}: the kernel failed before the first test "
                             f"({outcome.status.value}: {outcome.detail}); retrying once")
                    st.data["retried"] = outcome.detail or outcome.status.value
                    continue
                break
            assert outcome is not None
            junit = read_junit(self.results / f"{suite.name}.junit.xml")
            tests, findings = judge_boot(suite, junit, scan, outcome)
            if suite.repeat is not None:
                tests += self._reproduce_summary(suite, console, scan, outcome, st.data)
            self.run.tests += tests
            self.run.findings += findings
            st.data.update({"vm": outcome.status.value, "vm_seconds": round(outcome.seconds, 1),
                            "boot_seconds": round(outcome.boot_seconds or 0, 1),
                            "exit_code": outcome.exit_code})
            bad = [t for t in tests if not t.status.ok]
            st.detail = (f"{outcome.status.value} in {outcome.seconds:.0f}s, "
                         f"{len(tests) - len(bad)}/{len(tests)} ok")
            if bad:
                st.status = Status.FAIL
                raise StageFailed(suite.name)

    def _reproduce_summary(self, suite: Suite, console: Path, scan: ScanResult,
                           outcome: VmOutcome, data: dict[str, object]) -> list[TestResult]:
        """The reproduce line; for a suite with stop_round, whether the loop
        really stopped at the first finding (it is the loop's own self-test)."""
        assert suite.repeat is not None
        # bytes, not read_text(): universal newlines would renumber the lines
        summary = summarize(console.read_bytes().decode(errors="replace"), scan,
                            tests=suite.selection,
                            requested=suite.repeat,
                            seconds=outcome.seconds - (outcome.boot_seconds or 0),
                            vm_detail=f"{outcome.status.value}: {outcome.detail}",
                            vm_problem=(None if outcome.status is VmStatus.COMPLETED
                                        else f"{outcome.status.value}: {outcome.detail}"))
        (self.results / f"{suite.name}.reproduce.txt").write_text(summary.line() + "\n")
        self.run.info[f"reproduce:{suite.name}"] = summary.as_dict()
        data["reproduce"] = summary.as_dict()
        self.say(summary.line())
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

    @staticmethod
    def _boot_broke_before_tests(outcome: VmOutcome, scan: object) -> bool:
        from .logscan import ScanResult
        assert isinstance(scan, ScanResult)
        if outcome.status is VmStatus.BOOT_FAILURE:
            return True
        if scan.tests:
            return False
        return any(f.kind in (Kind.BUG, Kind.GPF, Kind.PANIC) for f in scan.findings)

    def _finish(self) -> None:
        write_summary_json(self.run, self.results / "summary.json")
        write_junit(self.run, self.results / "junit.xml")
        latest = self.results.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.results.name)
        except OSError:
            pass
        print(terminal_summary(self.run))
        print(plain_counts_line(self.run))
        print(f"results: {self.results}")
