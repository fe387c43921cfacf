"""The run: source -> patches -> config -> build -> boot -> guest tests -> log scan -> report.

This module keeps the order of the stages and nothing else: what each stage
does lives in its own module (source, patches, kconfig, build, accel, suites,
bootsuite), reached through `Steps` so tests replace any of them without
touching module globals.  Each stage is timed and recorded; a failing stage
stops the ones after it and is reported with its reason and its kind (a
series fault or a harness fault, errors.py).  Everything a run produces lands
in one results directory, printed at the end.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from . import build as build_mod
from . import kconfig, patches, source
from . import variant as variant_mod
from .accel import AccelChoice, Probe, choose_accel, host_boot_id
from .bootsuite import RunVm, boot_suite
from .errors import is_series_fault
from .guest import GuestEnv, guest_build_argv
from .kconfig import ConfigResult, fragment_files
from .layout import BASELINE_TAG, DEBIAN_TARBALL, SERIES_BRANCH, Layout, cpu_lock
from .procs import Runner
from .report import finish_run
from .results import RunResult, StageResult, Status
from .suites import Suite, deadlines_for, select_suites
from .vm import Accel, VmSpec, probe_kvm, run_vm, vng_argv

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
    # a guest test's budget when it declares none (timeout_s), before scaling;
    # None: protocol.DEFAULT_BUDGET_S
    test_timeout: float | None = None
    results_dir: Path | None = None
    build_only: bool = False
    # reproduce mode: the `only` selection in rounds (0: until the first finding)
    repeat: int | None = None
    repeat_minutes: float = 30.0
    variant: str | None = None    # boot kernel-patches/<variant>/ instead of the series


def _default_probe(vng: str) -> Probe:
    def probe(bzimage: Path, console_log: Path, timeout: float) -> tuple[bool, str]:
        return probe_kvm(VmSpec(kernel=bzimage, accel=Accel.KVM, vng=vng),
                         console_log=console_log, timeout=timeout, say=lambda s: None)
    return probe


@dataclass(kw_only=True)
class Steps:
    """The work behind each stage; tests pass fakes."""

    prepare_source: Callable[..., source.SourceTree] = source.prepare_source
    apply_series: Callable[..., patches.PatchResult] = patches.apply_series
    configure: Callable[..., ConfigResult] = kconfig.configure
    build_kernel: Callable[..., build_mod.BuildResult] = build_mod.build_kernel
    run_vm: RunVm = run_vm
    probe: Probe | None = None          # None: a real KVM probe boot
    boot_id: Callable[[], str] = host_boot_id
    lock: Callable[[Path, Callable[[str], None]], AbstractContextManager[object]] = cpu_lock


def venv_bin(layout: Layout) -> Path:
    return Path(os.environ.get("VIRTUAL_ENV", layout.repo / ".venv")) / "bin"


def stress_env() -> tuple[tuple[str, str], ...]:
    """The lock-ordering scenarios' round counts, passed on from the host."""
    return tuple((k, os.environ[k]) for k in STRESS_ENV if os.environ.get(k, "").strip())


class Pipeline:
    def __init__(self, opts: Options, runner: Runner, layout: Layout,
                 say: Callable[[str], None], steps: Steps | None = None) -> None:
        self.opts = opts
        self.runner = runner
        self.layout = layout
        self.say = say
        self.steps = steps or Steps()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.results = opts.results_dir or (layout.results_root / f"{stamp}-{opts.suites}")
        self.run = RunResult(results_dir=str(self.results))
        self.vng = str(venv_bin(layout) / "vng")
        self.python = venv_bin(layout) / "python"

    def _lock(self) -> AbstractContextManager[object]:
        return self.steps.lock(self.layout.cpu_lock, self.say)

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
            # a series fault fails the run (exit 1); anything else is the
            # harness's or the machine's (exit 2), a harness bug included
            result.status = Status.FAIL if is_series_fault(exc) else Status.ERROR
            result.detail = f"{type(exc).__name__}: {exc}"
            self.say(f"{name}: FAILED: {exc}")
            raise StageFailed(name) from exc
        finally:
            result.seconds = time.monotonic() - start
            self.run.stages.append(result)

    def execute(self) -> RunResult:
        self.results.mkdir(parents=True, exist_ok=True)
        try:
            self._execute()
        except StageFailed:
            pass
        finally:
            self._finish()
        return self.run

    def suites(self) -> list[Suite]:
        return select_suites(self.layout, self.opts.suites, only=tuple(self.opts.only),
                             stress_env=stress_env(), repeat=self.opts.repeat,
                             repeat_minutes=self.opts.repeat_minutes, variant=self.opts.variant)

    def _flavour(self, src: source.SourceTree) -> str:
        # one build directory per source tree: objects of two trees must never
        # share an O= directory
        if src.user_tree:
            return self.opts.flavour + "-" + hashlib.sha256(str(src.path).encode()).hexdigest()[:10]
        return self.opts.flavour

    # -- stages ---------------------------------------------------------------

    def _execute(self) -> None:
        opts, runner, layout, say, steps = self.opts, self.runner, self.layout, self.say, self.steps
        with self.stage("source") as st:
            src = steps.prepare_source(runner, layout, say, opts.kernel_src)
            st.detail = f"Linux {src.version} at {src.path}"
            self.run.info["kernel_version"] = src.version
        flavour = self._flavour(src)
        build_dir = layout.build_dir(flavour)
        # the lock covers the tree too: another run (or series-check) must not
        # switch the patches under a build
        with self._lock():
            with self.stage("patches") as st:
                patched = steps.apply_series(runner, src, layout.patches, say, force=opts.force)
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
                runner.run(guest_build_argv(layout.guest_tests, guest_bin, build_dir, src.path),
                           log_path=self.results / "guest-build.log")
                st.detail = str(guest_bin)
            suites = self.suites()
            kernels: dict[str | None, build_mod.BuildResult] = {None: built}
            for name in sorted({s.variant for s in suites if s.variant}):
                kernels[name] = self._build_variant(name, src.path, build_dir, flavour)
        if opts.build_only:
            return
        with self.stage("accel") as st:
            choice = self._choose_accel(built.bzimage)
            st.detail = f"{choice.accel.value}: {choice.why}"
            self.run.info["accel"] = choice.accel.value
            self.run.info["accel_reason"] = choice.why
        spec = self._vm_spec(built.bzimage, choice.accel)
        self.run.info["timeout_scale"] = spec.scale
        env = self._guest_env(guest_bin, built.release, spec.scale)
        failed_boots = []
        for suite in suites:
            kernel = kernels[suite.variant]
            try:
                self._boot(suite, replace(spec, kernel=kernel.bzimage),
                           replace(env, kernel_release=kernel.release))
            except StageFailed:
                failed_boots.append(suite.name)
        if failed_boots:
            raise StageFailed(", ".join(failed_boots))

    def _vm_spec(self, bzimage: Path, accel: Accel) -> VmSpec:
        return VmSpec(kernel=bzimage, accel=accel, cpus=self.opts.cpus, memory=self.opts.memory,
                      append=KERNEL_ARGS, rwdirs=(self.results,),
                      monitor=self.results / "qemu-monitor.sock", vng=self.vng)

    def _guest_env(self, guest_bin: Path, release: str, scale: float) -> GuestEnv:
        return GuestEnv(repo=self.layout.repo, python=self.python, guest_bin=guest_bin,
                        kernel_release=release, timeout_scale=scale,
                        test_timeout=self.opts.test_timeout)

    def _choose_accel(self, bzimage: Path) -> AccelChoice:
        return choose_accel(self.opts.accel, bzimage=bzimage, cache=self.layout.cache,
                            console_log=self.results / "kvm-probe.console.log",
                            probe=self.steps.probe or _default_probe(self.vng),
                            boot_id=self.steps.boot_id, lock=self._lock, say=self.say)

    def _configure(self, tree: Path, build_dir: Path, keep_as: str) -> ConfigResult:
        """The harness config in build_dir, a copy kept in the results as keep_as."""
        cfg = self.steps.configure(self.runner, source=tree, build_dir=build_dir,
                                   fragments=fragment_files(self.layout.configs,
                                                            self.opts.fragments),
                                   configkernel=str(Path(self.vng).with_name(
                                       "virtme-configkernel")),
                                   say=self.say)
        shutil.copyfile(cfg.config_path, self.results / keep_as)
        return cfg

    def _build(self, tree: Path, build_dir: Path, log_name: str) -> build_mod.BuildResult:
        return self.steps.build_kernel(self.runner, source=tree, build_dir=build_dir,
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
            seeded = variant_mod.seed_build_dir(series_build, build_dir, say,
                                                series_head=variant_mod.tree_head(self.runner, tree))
            with variant_mod.applied(self.runner, tree, variant, build_dir, say) as paths:
                self._configure(tree, build_dir, f"kernel-{name}.config")
                built = self._build(tree, build_dir, f"build-{name}.log")
            st.detail = (f"{built.release}, {built.objects_built} steps, "
                         f"{len(variant.patches)} patch(es) on the series changing "
                         f"{', '.join(paths)}" + (", seeded from the series build" if seeded else ""))
            st.data = {"steps": built.objects_built, "seeded": seeded, "changed": paths}
        return built

    def _boot(self, suite: Suite, spec: VmSpec, env: GuestEnv) -> None:
        with self.stage(f"boot:{suite.name}") as st:
            report = boot_suite(suite, spec, env, results=self.results, run_vm=self.steps.run_vm,
                                lock=self._lock, say=self.say)
            self.run.tests += report.tests
            self.run.findings += report.findings
            if report.reproduce is not None:
                self.run.info[f"reproduce:{suite.name}"] = report.reproduce
            st.data.update(report.data)
            st.detail = report.detail
            if not report.ok:
                st.status = (Status.ERROR if any(t.status is Status.ERROR for t in report.tests)
                             else Status.FAIL)
                raise StageFailed(suite.name)

    def _finish(self) -> None:
        finish_run(self.run, self.results)

    # -- the plan (--dry-run) -------------------------------------------------

    def plan(self) -> list[str]:
        """What execute() would do, stage by stage, without running or
        touching anything (no directory is created, no lock taken)."""
        opts, layout = self.opts, self.layout
        tree = opts.kernel_src or layout.source
        user_tree = opts.kernel_src is not None
        flavour = (self._flavour(source.SourceTree(path=tree, version="?", baseline=None,
                                                   user_tree=True)) if user_tree
                   else opts.flavour)
        build_dir = layout.build_dir(flavour)
        guest_bin = layout.guest_build_dir(flavour)
        lines = []
        if user_tree:
            lines.append(f"source: use the kernel tree {tree} as it is")
            lines.append("patches: none (a KERNEL_SRC tree is built as it is)")
        else:
            lines.append(f"source: {tree} (unpacked once from {DEBIAN_TARBALL} and "
                         f"committed as {BASELINE_TAG})")
            series = patches.read_series(layout.patches)
            lines.append(f"patches: git am {len(series)} patch(es) of {layout.patches}/series "
                         f"onto {BASELINE_TAG}, branch {SERIES_BRANCH}"
                         + (" (--force: drop unexported commits)" if opts.force else ""))
        frags = fragment_files(layout.configs, opts.fragments)
        lines.append(f"config: virtme-configkernel --defconfig in {build_dir}, then "
                     + ", ".join(str(f.relative_to(layout.repo)) for f in frags)
                     + ", olddefconfig, every requested option verified")
        lines.append("build: " + shlex.join(build_mod.make_argv(
            tree, build_dir, opts.jobs or os.cpu_count() or 2)) + " (and headers_install)")
        lines.append("guest-build: " + shlex.join(guest_build_argv(
            layout.guest_tests, guest_bin, build_dir, tree)))
        suites = self.suites()
        for name in sorted({s.variant for s in suites if s.variant}):
            lines.append(f"build:{name}: the series plus {layout.patches / name}/ into "
                         f"{layout.build_dir(flavour + '-' + name)}")
        if opts.build_only:
            return lines
        lines.append("accel: " + ({"kvm": "KVM (forced)", "tcg": "TCG (forced)"}.get(
            opts.accel, "KVM if a short probe boot works (cached per host boot), else TCG")))
        accel = Accel.KVM if opts.accel == "kvm" else Accel.TCG
        spec = self._vm_spec(build_dir / "arch/x86/boot/bzImage", accel)
        for suite in suites:
            dl = deadlines_for(suite, spec.scale)
            lines.append(f"boot:{suite.name}: pytest {' '.join(suite.selection)}"
                         + (f" in rounds (repeat={suite.repeat})" if suite.repeat is not None
                            else "")
                         + f"; deadlines ({accel.value}): boot {dl.boot:.0f}s, idle "
                         f"{dl.idle:.0f}s, whole {dl.total:.0f}s, each test its budget + grace")
            lines.append("    " + shlex.join(vng_argv(
                spec, f"sh {self.results / (suite.name + '.guest.sh')}")))
        lines.append(f"report: {self.results}/summary.json, junit.xml, console logs")
        return lines
