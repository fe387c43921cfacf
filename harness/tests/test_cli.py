"""The command line's contracts: exit statuses, checks before anything is
built, --dry-run, help, and shell's accel choice.  No test here builds or
boots anything: the pipeline is always a fake passed through cli.Deps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.build import BuildError
from harness.deps import SetupError
from harness.errors import EXIT_FAILED, EXIT_HARNESS, EXIT_OK, UsageError, exit_code_for
from harness.kconfig import ConfigError
from harness.layout import Layout
from harness.patches import BadSeries, PatchConflict, PatchError
from harness.procs import CommandError, MissingProgram
from harness.results import RunResult, StageResult, Status, TestResult, run_exit_code
from harness.source import SourceError
from harness.variant import VariantError


class FakePipeline:
    """Records how it was made; execute() returns the run it was given."""

    made: list[Any] = []

    def __init__(self, run: RunResult | None = None, plan: list[str] | None = None) -> None:
        self.run = run or RunResult(results_dir="r")
        self._plan = plan or ["source: x"]
        self.executed = False

    def __call__(self, opts: Any, runner: Any, layout: Any, say: Any) -> FakePipeline:
        self.opts = opts
        return self

    def execute(self) -> RunResult:
        self.executed = True
        return self.run

    def plan(self) -> list[str]:
        return self._plan


def never_pipeline(*a: Any) -> Any:
    raise AssertionError("the pipeline must not be made")


def deps(pipeline: Any = never_pipeline, known: tuple[str, ...] = ("test_kernel.py",),
         layout: Layout | None = None) -> cli.Deps:
    def check(layout: Layout, selection: list[str], env: dict[str, str]) -> None:
        missing = [s for s in selection if s.split("::")[0] not in known]
        if missing:
            raise UsageError(f"no guest test matches {' '.join(missing)!r}")
    return cli.Deps(pipeline=pipeline, check_selection=check,
                    layout=(lambda: layout) if layout else Layout.default)


def test_reproduce_refuses_an_unknown_test_before_building(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reproduce", "test_nothing_here.py::test_x"], deps()) == EXIT_HARNESS
    assert "no guest test matches 'test_nothing_here.py::test_x'" in capsys.readouterr().err


def test_run_only_is_checked_before_building(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--only", "test_nope.py"], deps()) == EXIT_HARNESS
    fake = FakePipeline()
    assert cli.main(["run", "--only", "test_kernel.py"], deps(fake)) == EXIT_OK and fake.executed


def test_reproduce_refuses_a_negative_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reproduce", "test_kernel.py", "--count", "-1"], deps()) == EXIT_HARNESS
    assert "--count takes a number of rounds >= 0" in capsys.readouterr().err


def test_reproduce_defaults_until_the_first_finding() -> None:
    args = cli.build_parser().parse_args(["reproduce", "test_lock_ordering.py"])
    assert (args.count, args.max_minutes, args.variant, args.suites) == (0, 30.0, None,
                                                                          "reproduce")


def test_reproduce_exits_1_when_found_even_if_the_test_expected_it() -> None:
    run = RunResult(results_dir="r")   # all green: the negative test expected it
    run.info["reproduce:reproduce"] = {"finding": "LOCKDEP: possible deadlock in f"}
    fake = FakePipeline(run)
    assert cli.main(["reproduce", "negative/test_invert.py", "--variant", "negative"],
                    deps(fake, known=("negative/test_invert.py",))) == EXIT_FAILED
    assert (fake.opts.repeat, fake.opts.variant) == (0, "negative")


def test_ci_does_not_imply_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    fake = FakePipeline()
    cli.main(["run"], deps(fake))
    assert fake.opts.force is False
    cli.main(["run", "--force"], deps(fake))
    assert fake.opts.force is True


def test_dry_run_prints_the_plan_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePipeline(plan=["source: a", "boot:guest: b"])
    assert cli.main(["run", "--dry-run", "--suites", "all"], deps(fake)) == EXIT_OK
    assert not fake.executed
    assert capsys.readouterr().out == "source: a\nboot:guest: b\n"


def test_test_timeout_reaches_the_options() -> None:
    fake = FakePipeline()
    cli.main(["run", "--test-timeout", "45"], deps(fake))
    assert fake.opts.test_timeout == 45
    assert cli.main(["run", "--test-timeout", "0"], deps(fake)) == EXIT_HARNESS


# -- one error taxonomy -------------------------------------------------------

ERRORS = [
    (MissingProgram(["vng"]), EXIT_HARNESS),
    (CommandError(["make", "-C", "guest-tests"], 2, "cc: error"), EXIT_HARNESS),
    (SetupError("apt-get could not install: qemu-system-x86"), EXIT_HARNESS),
    (ConfigError("options asked for by configs/ were dropped"), EXIT_HARNESS),
    (SourceError("/usr/src/linux-source-6.12.tar.xz is missing"), EXIT_HARNESS),
    (VariantError("kernel-patches/negative/series lists no patches"), EXIT_HARNESS),
    (PatchError("the kernel tree has uncommitted changes"), EXIT_HARNESS),
    (UsageError("bad"), EXIT_HARNESS),
    (OSError("disk full"), EXIT_HARNESS),
    (RuntimeError("a harness bug"), EXIT_HARNESS),
    (PatchConflict("0002-x.patch", "patch failed"), EXIT_FAILED),
    (BadSeries("kernel-patches/series:3: 0009-x.patch does not exist"), EXIT_FAILED),
    (BuildError("build: make failed", ["x.c:1: error: y"], Path("b.log")), EXIT_FAILED),
]


@pytest.mark.parametrize("exc,code", ERRORS, ids=[type(e).__name__ + str(c) for e, c in ERRORS])
def test_every_error_has_one_exit_status(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


@pytest.mark.parametrize("exc,code", ERRORS, ids=[type(e).__name__ + str(c) for e, c in ERRORS])
def test_a_stage_that_raises_gives_the_runs_exit_status(exc: BaseException, code: int,
                                                        tmp_path: Path) -> None:
    """Through the real pipeline's stage(): the status it records decides the exit."""
    from harness.pipeline import Options, Pipeline, StageFailed
    p = Pipeline(Options(results_dir=tmp_path), runner=None, layout=Layout.default(),  # type: ignore[arg-type]
                 say=lambda s: None)
    with pytest.raises(StageFailed):
        with p.stage("x"):
            raise exc
    assert run_exit_code(p.run) == code


@pytest.mark.parametrize("exc,code", ERRORS, ids=[type(e).__name__ + str(c) for e, c in ERRORS])
def test_a_command_that_raises_exits_with_its_status(exc: BaseException, code: int,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever escapes a command reaches main(), which maps it through errors.py."""
    def raising(*a: Any) -> Any:
        raise exc
    assert cli.main(["run"], deps(raising)) == code
    assert str(exc).splitlines()[0] in capsys.readouterr().err


def run_with(stages: list[Status], tests: list[Status]) -> RunResult:
    run = RunResult(results_dir="r")
    run.stages = [StageResult(name=f"s{i}", status=s, seconds=0) for i, s in enumerate(stages)]
    run.tests = [TestResult(suite="guest", name=f"t{i}", status=s) for i, s in enumerate(tests)]
    return run


@pytest.mark.parametrize("stages,tests,code", [
    ([Status.PASS], [Status.PASS, Status.SKIP], EXIT_OK),
    ([Status.PASS], [Status.FAIL], EXIT_FAILED),            # a test
    ([Status.PASS], [Status.CRASHED], EXIT_FAILED),         # a panic or a hang in a test
    ([Status.PASS], [Status.INCONCLUSIVE], EXIT_FAILED),    # lockdep was off
    ([Status.FAIL], [], EXIT_FAILED),                       # a series fault
    ([Status.ERROR], [], EXIT_HARNESS),                     # the machine
    ([Status.PASS], [Status.FAIL, Status.ERROR], EXIT_HARNESS),   # a lost VM: incomplete
])
def test_run_results_map_to_exit_statuses(stages: list[Status], tests: list[Status],
                                          code: int) -> None:
    run = run_with(stages, tests)
    assert run_exit_code(run) == code
    assert cli.main(["run"], deps(FakePipeline(run))) == code


# -- help -----------------------------------------------------------------------

def _parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [p]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _parsers(sub)
    return out


def test_every_option_has_help() -> None:
    missing = [f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
               for p in _parsers(cli.build_parser()) for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert missing == []


def test_top_level_help_says_what_the_tool_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "builds Linux 6.12 with the io_uring BPF iterator series" in out
    assert "exit status: 0" in out and "argparse" not in out


# -- shell: the same accel choice as run -----------------------------------------

def shell_layout(tmp_path: Path) -> Layout:
    layout = Layout(repo=Path(__file__).resolve().parents[2], cache=tmp_path / "cache")
    bz = layout.build_dir("default") / "arch/x86/boot/bzImage"
    bz.parent.mkdir(parents=True)
    bz.write_bytes(b"")
    return layout


@pytest.mark.parametrize("accel,tcg", [("tcg", True), ("kvm", False)])
def test_shell_honours_a_forced_accel(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      accel: str, tcg: bool) -> None:
    layout = shell_layout(tmp_path)
    assert cli.main(["shell", "--accel", accel, "--dry-run"], deps(layout=layout)) == EXIT_OK
    out = capsys.readouterr().out
    assert ("--disable-kvm" in out) is tcg and "no5lvl" in out


def test_shell_auto_uses_runs_probe_result(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from harness.accel import host_boot_id
    layout = shell_layout(tmp_path)
    (layout.cache / "kvm-probe.json").write_text(json.dumps(
        {"boot_id": host_boot_id(), "accel": "tcg", "why": "probe failed"}))
    assert cli.main(["shell", "--dry-run"], deps(layout=layout)) == EXIT_OK
    captured = capsys.readouterr()
    assert "--disable-kvm" in captured.out and "probed earlier this host boot" in captured.err


def test_shell_without_a_kernel_is_a_harness_error(tmp_path: Path) -> None:
    layout = Layout(repo=Path("/r"), cache=tmp_path / "none")
    assert cli.main(["shell", "--accel", "tcg"], deps(layout=layout)) == EXIT_HARNESS


# -- the real host-side collection ------------------------------------------------

def test_collect_checks_ids_against_the_guest_suite() -> None:
    """--only is refused by a real collection of guest-tests/ on the host."""
    import sys
    from harness.collect import collect
    from harness.procs import SubprocessRunner
    layout = Layout.default()
    got = collect(SubprocessRunner(), Path(sys.executable), layout.guest_tests,
                  ["test_kernel.py"])
    assert "test_kernel.py::test_io_uring_nop_round_trip" in got.ids
    with pytest.raises(UsageError, match="does not collect|no guest test"):
        collect(SubprocessRunner(), Path(sys.executable), layout.guest_tests,
                ["test_kernel.py::test_no_such_test"])


def test_the_last_line_says_the_harness_status(capsys: pytest.CaptureFixture[str]) -> None:
    """make turns every failure into 2: the harness's own status is printed last."""
    assert cli.main(["run"], deps(FakePipeline(run_with([Status.PASS], [Status.FAIL])))) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "harness: exit status 1 (the code under test failed)")
    cli.main(["run", "--only", "test_nope.py"], deps())
    assert capsys.readouterr().err.splitlines()[-1] == (
        "harness: exit status 2 (the harness or the machine failed)")
