"""uring-iter-harness: builds Linux 6.12 with the io_uring BPF iterator series,
boots it under virtme-ng (KVM where a probe boot proves it works, TCG
otherwise), runs the guest tests inside it, scans the kernel console for
lockdep, KASAN, UBSAN, hung-task, lockup, RCU-stall, WARN, BUG and panic
reports, and writes one results directory per run (console logs, kernel
config, JUnit, summary.json).

exit status: 0 everything passed and the kernel log is clean; 1 a test, a
detector self-test, the series or a kernel report failed; 2 the harness or the
machine failed (a missing program, a config error, a guest build error, a VM
that did not boot, a bad command line).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .accel import AccelChoice, choose_accel, host_boot_id
from .errors import EXIT_FAILED, EXIT_HARNESS, EXIT_OK, UsageError, exit_code_for
from .layout import Layout, cpu_lock
from .pipeline import Options, Pipeline, venv_bin
from .suites import SUITE_CHOICES
from .procs import CommandError, SubprocessRunner, signals_interrupt
from .results import run_exit_code


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(kw_only=True)
class Deps:
    """What the commands reach outside themselves; tests pass fakes."""

    pipeline: Callable[..., Pipeline] = Pipeline
    layout: Callable[[], Layout] = Layout.default
    # (layout, selection, env) -> None, or UsageError naming what does not exist
    check_selection: Callable[[Layout, list[str], dict[str, str]], None] = \
        lambda layout, selection, env: _collect(layout, selection, env)


def _collect(layout: Layout, selection: list[str], env: dict[str, str]) -> None:
    from .collect import collect
    collect(SubprocessRunner(), venv_bin(layout) / "python", layout.guest_tests, selection,
            env=env)


def _runner(args: argparse.Namespace) -> SubprocessRunner:
    return SubprocessRunner(verbose=getattr(args, "verbose", False))


def cmd_setup(args: argparse.Namespace, deps: Deps) -> int:
    from .deps import ensure_packages
    ensure_packages(_runner(args), say)
    return EXIT_OK


def _kernel_src(args: argparse.Namespace) -> Path | None:
    value = args.kernel_src or os.environ.get("KERNEL_SRC")
    return Path(value).resolve() if value else None


def _options(args: argparse.Namespace) -> Options:
    return Options(suites=args.suites, kernel_src=_kernel_src(args), force=args.force,
                   accel=args.accel, jobs=args.jobs, only=list(args.only or []),
                   fragments=(args.fragments.split(",") if args.fragments
                              else Options().fragments),
                   results_dir=Path(args.results_dir) if args.results_dir else None,
                   build_only=args.build_only, test_timeout=args.test_timeout)


def cmd_run(args: argparse.Namespace, deps: Deps) -> int:
    layout = deps.layout()
    opts = _options(args)
    reproduce = getattr(args, "count", None) is not None
    if reproduce:
        if args.count < 0 or not args.max_minutes > 0:
            raise UsageError("reproduce: --count takes a number of rounds >= 0 (0: until the "
                             "first finding) and --max-minutes a positive number")
        opts.suites, opts.repeat = "reproduce", args.count
        opts.repeat_minutes, opts.variant = args.max_minutes, args.variant
    if opts.test_timeout is not None and not opts.test_timeout > 0:
        raise UsageError("--test-timeout takes a positive number of seconds")
    if opts.only:   # refused before anything is built: collecting takes a second
        deps.check_selection(layout, opts.only,
                             {"HARNESS_NEGATIVE": "1"} if opts.variant else {})
    pipeline = deps.pipeline(opts, _runner(args), layout, say)
    if args.dry_run:
        print("\n".join(pipeline.plan()))
        return EXIT_OK
    run = pipeline.execute()
    repro = run.info.get("reproduce:reproduce")
    if isinstance(repro, dict) and repro.get("finding"):
        return EXIT_FAILED    # reproduced, even where the test expects it (negative/)
    return run_exit_code(run)


def cmd_tree(args: argparse.Namespace, deps: Deps) -> int:
    from .patches import PatchError, apply_series
    from .source import SourceError, prepare_source
    layout, runner = deps.layout(), _runner(args)
    try:
        src = prepare_source(runner, layout, say, None)
        with cpu_lock(layout.cpu_lock, say):  # never switch the tree under a build
            apply_series(runner, src, layout.patches, say, force=args.force)
    except (PatchError, SourceError, CommandError) as exc:
        say(str(exc))
        return exit_code_for(exc)
    say(f"tree: {src.path} (branch series = baseline + kernel-patches/series); edit, commit, "
        "then `make export`")
    print(src.path)
    return 0


def cmd_export(args: argparse.Namespace, deps: Deps) -> int:
    from .patches import PatchError, export_series
    from .source import SourceError, prepare_source
    layout, runner = deps.layout(), _runner(args)
    try:
        src = prepare_source(runner, layout, say, None)
        export_series(runner, src, layout.patches, say)
    except (PatchError, SourceError, CommandError) as exc:
        say(str(exc))
        return exit_code_for(exc)
    return EXIT_OK


def cmd_series_check(args: argparse.Namespace, deps: Deps) -> int:  # noqa: C901
    from datetime import datetime, timezone
    from .series_check import check_series
    from .source import prepare_source
    layout, runner = deps.layout(), _runner(args)
    results = layout.results_root / (datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
                                     + "-series-check")
    results.mkdir(parents=True, exist_ok=True)
    src = prepare_source(runner, layout, say, None)
    checks = check_series(runner, layout, src, results, say, build=not args.no_build,
                          configkernel=str(Path(sys.executable).with_name("virtme-configkernel")))
    (results / "series-check.json").write_text(json.dumps(
        [vars(c) for c in checks], indent=2) + "\n")
    for c in checks:
        built = {True: "builds", False: "BUILD FAILS", None: "not built"}[c.builds]
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.patch}: checkpatch {c.checkpatch}; "
              f"signed-off {'yes' if c.signed_off else 'NO'}; {built}"
              + (f" ({c.build_seconds:.0f}s)" if c.builds is not None else ""))
        if c.build_error:
            print("     " + c.build_error.replace("\n", "\n     "))
    print(f"results: {results}")
    return EXIT_OK if checks and all(c.ok for c in checks) else EXIT_FAILED


def cmd_scan(args: argparse.Namespace, deps: Deps) -> int:
    from .logscan import scan_file
    result = scan_file(Path(args.log))
    out = [{"kind": f.kind.value, "title": f.title, "test": f.test,
            "lines": [f.first_line, f.last_line]} for f in result.findings]
    print(json.dumps(out, indent=2))
    return EXIT_FAILED if result.findings else EXIT_OK


def _accel(requested: str, layout: Layout, bzimage: Path) -> AccelChoice:
    """The same KVM/TCG choice as `run` makes (accel.py), for shell and guest."""
    from .pipeline import _default_probe
    return choose_accel(requested, bzimage=bzimage, cache=layout.cache,
                        console_log=layout.cache / "kvm-probe.console.log",
                        probe=_default_probe(str(venv_bin(layout) / "vng")),
                        boot_id=host_boot_id, lock=lambda: cpu_lock(layout.cpu_lock, say),
                        say=say)


def cmd_shell(args: argparse.Namespace, deps: Deps) -> int:
    import subprocess
    from .pipeline import KERNEL_ARGS
    from .vm import VmSpec, vng_argv
    layout = deps.layout()
    bzimage = layout.build_dir("default") / "arch/x86/boot/bzImage"
    if not bzimage.exists():
        raise UsageError(f"{bzimage} does not exist: run `make run` (or `make build`) first")
    vng = str(venv_bin(layout) / "vng")
    choice = _accel(args.accel, layout, bzimage)
    argv = vng_argv(VmSpec(kernel=bzimage, accel=choice.accel, vng=vng, append=KERNEL_ARGS),
                    None)
    say(f"shell: {' '.join(argv)}  ({choice.accel.value}: {choice.why}; exit the shell to "
        "power off)")
    if args.dry_run:
        print(shlex.join(argv))
        return EXIT_OK
    env = dict(os.environ)
    env["PATH"] = str(Path(vng).parent) + os.pathsep + env.get("PATH", "")  # vng runs virtme-run
    with cpu_lock(layout.cpu_lock, say):
        return subprocess.call(argv, env=env)


def cmd_guest(args: argparse.Namespace, deps: Deps) -> int:
    from .pipeline import KERNEL_ARGS
    from .retest import bzimage, start_guest
    layout = deps.layout()
    vng = str(venv_bin(layout) / "vng")
    choice = _accel(args.accel, layout, bzimage(layout))
    with signals_interrupt():
        start_guest(layout, choice, vng=vng, python=str(venv_bin(layout) / "python"),
                    append=KERNEL_ARGS, say=say)
    return EXIT_OK


def cmd_retest(args: argparse.Namespace, deps: Deps) -> int:
    from .pipeline import KERNEL_ARGS, stress_env
    from .retest import retest
    layout = deps.layout()
    only = list(args.only or [])
    if only:
        deps.check_selection(layout, only, {})
    if args.test_timeout is not None and not args.test_timeout > 0:
        raise UsageError("--test-timeout takes a positive number of seconds")
    run = retest(layout, _runner(args), selection=tuple(only), python=venv_bin(layout) / "python",
                 stress_env=stress_env(), test_timeout=args.test_timeout, append=KERNEL_ARGS,
                 say=say)
    return run_exit_code(run)


def cmd_guest_stop(args: argparse.Namespace, deps: Deps) -> int:
    from .retest import stop_guest
    if not stop_guest(deps.layout(), say):
        say("guest-stop: no kept guest was running")
    return EXIT_OK


def _kernel_and_vm_options(p: argparse.ArgumentParser) -> None:
    """What run and reproduce both take: which kernel, how to build and boot it."""
    p.add_argument("--kernel-src", metavar="DIR",
                   help="build this kernel git tree as it is, no patches applied (also "
                   "KERNEL_SRC); it gets a build directory of its own")
    p.add_argument("--force", action="store_true",
                   help="let the harness drop commits on the prepared tree's series branch "
                   "that were not exported to kernel-patches/ (git reset --hard)")
    _accel_option(p)
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="parallel kernel build jobs (default: the number of CPUs)")
    p.add_argument("--fragments", metavar="A,B",
                   help="comma-separated configs/<name>.config fragments (default: base,debug,lean)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="write the results here instead of results/<time>-<suite>")
    p.add_argument("--test-timeout", type=float, default=None, metavar="S",
                   help="a guest test's budget in seconds when it declares none with "
                   "@pytest.mark.timeout_s, before the accelerator's scale (default 30; "
                   "make TEST_TIMEOUT=S)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan of every stage (commands, directories, deadlines) "
                   "and exit without running or touching anything")


def _accel_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto",
                   help="auto (default): KVM if a short probe boot works, cached per host "
                   "boot, else TCG; kvm or tcg: forced, no probe (make ACCEL=)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every command the harness runs")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="what to do; `harness COMMAND --help` for its options")

    s = sub.add_parser("setup", help="install the Debian packages the pipeline needs (apt-get)")
    s.set_defaults(func=cmd_setup)

    r = sub.add_parser("run", help="source, patches, config, build, boot, guest tests, report")
    r.add_argument("--suites", choices=list(SUITE_CHOICES), default="main",
                   help="main: the guest tests (one boot); detectors: the detector self-test "
                   "(one boot per detectors/ file); negative: the negative control "
                   "(kernel-patches/negative/, one boot per expected lockdep report); wrap: "
                   "the restore tests on the wrap test kernel (kernel-patches/wrap/, rings "
                   "whose counters start near 2^32); all: "
                   "every one (make test)")
    r.add_argument("--only", nargs="*", metavar="ID",
                   help="narrow the main guest suite to these pytest ids, relative to "
                   "guest-tests/ (checked before anything is built)")
    _kernel_and_vm_options(r)
    r.add_argument("--build-only", action="store_true",
                   help="stop after the kernel, the variants and the guest programs are built")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "reproduce", help="boot once and run guest tests in rounds until the first finding",
        description="Boots once and runs the given guest tests (pytest ids relative to "
        "guest-tests/) in rounds, streaming one line per round, until COUNT rounds are done, "
        "a test fails or the kernel reports something (lockdep, KASAN, hung task, WARN...). "
        "Exit status 1 when something was found (the bug reproduced), 0 when every round "
        "was clean, 2 when the harness or the machine failed.")
    rp.add_argument("only", nargs="+", metavar="TEST", help="e.g. test_lock_ordering.py::"
                    "test_abba_cross_ring_reads[plain]")
    rp.add_argument("--count", type=int, default=0,
                    help="rounds to run; 0 (default): until the first finding or --max-minutes")
    rp.add_argument("--max-minutes", type=float, default=30.0,
                    help="stop starting rounds after this long (default 30)")
    rp.add_argument("--variant", choices=["negative", "wrap"], default=None,
                    help="boot the series plus kernel-patches/<variant>/ instead")
    _kernel_and_vm_options(rp)
    rp.set_defaults(func=cmd_run, suites="reproduce", build_only=False)

    t = sub.add_parser("tree", help="prepare the kernel tree with the series applied, for editing")
    t.add_argument("--force", action="store_true",
                   help="drop unexported commits on the series branch")
    t.set_defaults(func=cmd_tree)
    e = sub.add_parser("export", help="write the tree's commits back to kernel-patches/")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("series-check",
                       help="checkpatch --strict and sign-off of every patch, a build of every "
                       "prefix of the series")
    c.add_argument("--no-build", action="store_true", help="checkpatch and sign-off only")
    c.set_defaults(func=cmd_series_check)
    sc = sub.add_parser("scan", help="scan a saved console log for kernel reports (JSON; "
                        "exit 1 when there are any)")
    sc.add_argument("log", help="a console log, e.g. results/latest/guest.console.log")
    sc.set_defaults(func=cmd_scan)
    sh = sub.add_parser("shell", help="interactive shell in the guest on the built kernel")
    _accel_option(sh)
    sh.add_argument("--dry-run", action="store_true", help="print the vng command and exit")
    sh.set_defaults(func=cmd_shell)

    g = sub.add_parser("guest", help="boot the built kernel once and keep it running for "
                       "`retest` (SSH over a loopback port; the console goes to the state "
                       "directory under ~/.cache/uring-iter-harness/kept-guest/)")
    _accel_option(g)
    g.set_defaults(func=cmd_guest)
    rt = sub.add_parser("retest", help="run guest tests in the kept guest over SSH: the same "
                        "markers, log scan and report as a boot, in seconds")
    rt.add_argument("--only", nargs="*", metavar="ID",
                    help="pytest ids relative to guest-tests/ (default: the main suite)")
    rt.add_argument("--test-timeout", type=float, default=None, metavar="S",
                    help="a guest test's budget when it declares none, before scaling")
    rt.set_defaults(func=cmd_retest)
    gs = sub.add_parser("guest-stop", help="power the kept guest off")
    gs.set_defaults(func=cmd_guest_stop)
    return p


_MEANING = {EXIT_OK: "everything passed", EXIT_FAILED: "the code under test failed",
            EXIT_HARNESS: "the harness or the machine failed"}


def main(argv: list[str] | None = None, deps: Deps | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = _main(args, deps or Deps())
    if args.command in ("run", "reproduce", "retest") and not getattr(args, "dry_run", False):
        # make exits 2 on any failure (GNU make's rule): the harness's own status
        # is this line, and summary.json's exit_code
        say(f"harness: exit status {code} ({_MEANING.get(code, 'interrupted')})")
    return code


def _main(args: argparse.Namespace, deps: Deps) -> int:
    try:
        return int(args.func(args, deps))
    except KeyboardInterrupt:
        say("interrupted")
        return exit_code_for(KeyboardInterrupt())
    except UsageError as exc:
        say(f"{args.command}: {exc}")
        return EXIT_HARNESS
    except Exception as exc:  # every error has one exit status: errors.py
        say(f"{args.command}: {exc}")
        return exit_code_for(exc)
