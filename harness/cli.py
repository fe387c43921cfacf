"""Command line: argparse and dispatch only.  Exit codes: 0 all green,
1 a test or detector failed, 2 the harness or the machine failed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .layout import Layout, cpu_lock
from .procs import CommandError, SubprocessRunner


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _runner(args: argparse.Namespace) -> SubprocessRunner:
    return SubprocessRunner(verbose=getattr(args, "verbose", False),
                            dry_run=getattr(args, "dry_run", False))


def cmd_setup(args: argparse.Namespace) -> int:
    from .deps import SetupError, ensure_packages
    try:
        ensure_packages(_runner(args), say)
    except (SetupError, CommandError) as exc:
        say(f"setup: {exc}")
        return 2
    return 0


def _kernel_src(args: argparse.Namespace) -> Path | None:
    value = args.kernel_src or os.environ.get("KERNEL_SRC")
    return Path(value).resolve() if value else None


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import Options, Pipeline
    # CI owns its machine's cache: local edits there are never anybody's work.
    force = args.force or os.environ.get("CI") == "true"
    opts = Options(suites=args.suites, kernel_src=_kernel_src(args), force=force,
                   accel=args.accel, jobs=args.jobs, only=args.only or [],
                   fragments=args.fragments.split(",") if args.fragments else
                   Options().fragments,
                   results_dir=Path(args.results_dir) if args.results_dir else None,
                   build_only=args.build_only)
    if getattr(args, "count", None) is not None and (args.count < 0 or not args.max_minutes > 0):
        say("reproduce: --count takes a number of rounds >= 0 (0: until the first finding) "
            "and --max-minutes a positive number")
        return 2
    if getattr(args, "count", None) is not None:   # reproduce
        guest_tests = Layout.default().guest_tests
        missing = [t for t in args.only if not (guest_tests / t.split("::", 1)[0]).exists()]
        if missing:
            say(f"reproduce: no such guest test: {', '.join(missing)}; ids are relative to "
                f"{guest_tests}, e.g. 'test_lock_ordering.py::test_abba_cross_ring_reads[plain]'")
            return 2
        opts.suites, opts.repeat = "reproduce", args.count
        opts.repeat_minutes, opts.variant = args.max_minutes, args.variant
    run = Pipeline(opts, _runner(args), Layout.default(), say).execute()
    repro = run.info.get("reproduce:reproduce")
    if isinstance(repro, dict) and repro.get("finding"):
        return 1    # reproduced, even where the test expects it (negative/)
    if run.ok:
        return 0
    infra = any(s.status.value == "error" for s in run.stages) or any(
        t.status.value == "error" for t in run.tests)
    return 2 if infra else 1


def cmd_tree(args: argparse.Namespace) -> int:
    from .patches import PatchError, apply_series
    from .source import SourceError, prepare_source
    layout, runner = Layout.default(), _runner(args)
    try:
        src = prepare_source(runner, layout, say, None)
        with cpu_lock(layout.cpu_lock, say):  # never switch the tree under a build
            apply_series(runner, src, layout.patches, say, force=args.force)
    except (PatchError, SourceError, CommandError) as exc:
        say(str(exc))
        return 1
    say(f"tree: {src.path} (branch series = baseline + kernel-patches/series); edit, commit, "
        "then `make export`")
    print(src.path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .patches import PatchError, export_series
    from .source import SourceError, prepare_source
    layout, runner = Layout.default(), _runner(args)
    try:
        src = prepare_source(runner, layout, say, None)
        export_series(runner, src, layout.patches, say)
    except (PatchError, SourceError, CommandError) as exc:
        say(str(exc))
        return 1
    return 0


def cmd_series_check(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone
    from .series_check import check_series
    from .source import prepare_source
    layout, runner = Layout.default(), _runner(args)
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
    return 0 if checks and all(c.ok for c in checks) else 1


def cmd_scan(args: argparse.Namespace) -> int:
    from .logscan import scan_file
    result = scan_file(Path(args.log))
    out = [{"kind": f.kind.value, "title": f.title, "test": f.test,
            "lines": [f.first_line, f.last_line]} for f in result.findings]
    print(json.dumps(out, indent=2))
    return 1 if result.findings else 0


def cmd_shell(args: argparse.Namespace) -> int:
    import subprocess
    from .vm import Accel, VmSpec, vng_argv
    layout = Layout.default()
    bzimage = layout.build_dir("default") / "arch/x86/boot/bzImage"
    if not bzimage.exists():
        say(f"{bzimage} does not exist: run `make run` (or `make build`) first")
        return 2
    probe = layout.cache / "kvm-probe.json"
    accel = Accel.TCG
    if probe.exists() and json.loads(probe.read_text()).get("accel") == "kvm":
        accel = Accel.KVM
    vng = str(Path(sys.executable).with_name("vng"))
    argv = vng_argv(VmSpec(kernel=bzimage, accel=accel, vng=vng,
                           append=("kasan_multi_shot",)), None)
    say(f"shell: {' '.join(argv)}  ({accel.value}; exit the shell to power off)")
    env = dict(os.environ)
    env["PATH"] = str(Path(vng).parent) + os.pathsep + env.get("PATH", "")  # vng runs virtme-run
    return subprocess.call(argv, env=env)


def _kernel_and_vm_options(p: argparse.ArgumentParser) -> None:
    """What run and reproduce both take: which kernel, how to build and boot it."""
    p.add_argument("--kernel-src", help="use this kernel git tree as it is (also KERNEL_SRC)")
    p.add_argument("--force", action="store_true",
                   help="drop unexported commits on the series branch")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--fragments", help="comma-separated configs/ fragment names")
    p.add_argument("--results-dir")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="print every command")
    p.add_argument("--dry-run", action="store_true", help="print commands, run nothing")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="install the Debian packages the pipeline needs")
    s.set_defaults(func=cmd_setup)

    r = sub.add_parser("run", help="source, patches, config, build, boot, tests, report")
    r.add_argument("--suites", choices=["main", "detectors", "negative", "all"], default="main",
                   help="main: guest tests; detectors: the detector self-test; negative: the "
                   "negative control (kernel-patches/negative/, one boot per expected "
                   "lockdep report); all: every one")
    r.add_argument("--only", nargs="*", help="pytest selection for the main guest suite")
    _kernel_and_vm_options(r)
    r.add_argument("--build-only", action="store_true")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "reproduce", help="boot once and run guest tests in rounds until the first finding",
        description="Boots once and runs the given guest tests (pytest ids relative to "
        "guest-tests/) in rounds, streaming one line per round, until COUNT rounds are done, "
        "a test fails or the kernel reports something (lockdep, KASAN, hung task, WARN...). "
        "Exit status 1 when something was found (the bug reproduced), 0 when every round "
        "was clean.")
    rp.add_argument("only", nargs="+", metavar="TEST", help="e.g. test_lock_ordering.py::"
                    "test_abba_cross_ring_reads[plain]")
    rp.add_argument("--count", type=int, default=0,
                    help="rounds to run; 0 (default): until the first finding or --max-minutes")
    rp.add_argument("--max-minutes", type=float, default=30.0,
                    help="stop starting rounds after this long (default 30)")
    rp.add_argument("--variant", choices=["negative"], default=None,
                    help="boot the series plus kernel-patches/<variant>/ instead")
    _kernel_and_vm_options(rp)
    rp.set_defaults(func=cmd_run, suites="reproduce", build_only=False)

    t = sub.add_parser("tree", help="prepare the kernel tree with the series applied")
    t.add_argument("--force", action="store_true")
    t.set_defaults(func=cmd_tree)
    e = sub.add_parser("export", help="write the tree's commits back to kernel-patches/")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("series-check",
                       help="checkpatch every patch, build every prefix of the series")
    c.add_argument("--no-build", action="store_true", help="checkpatch and sign-off only")
    c.set_defaults(func=cmd_series_check)
    sc = sub.add_parser("scan", help="scan a saved console log for kernel reports")
    sc.add_argument("log")
    sc.set_defaults(func=cmd_scan)
    sh = sub.add_parser("shell", help="interactive shell in the guest on the built kernel")
    sh.set_defaults(func=cmd_shell)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
