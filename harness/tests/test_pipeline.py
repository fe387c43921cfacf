"""The pipeline's orchestration with every stage's work replaced by fakes."""

import contextlib
import json
from pathlib import Path

import pytest

from harness import pipeline as pl
from harness import protocol
from harness.build import BuildResult
from harness.kconfig import ConfigResult
from harness.layout import Layout
from harness.patches import PatchConflict, PatchResult
from harness.procs import Completed
from harness.source import SourceTree
from harness.vm import VmOutcome, VmStatus


class NullRunner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv, **kw):  # type: ignore[no-untyped-def]
        self.calls.append(list(argv))
        return Completed(argv=list(argv), returncode=0, output="")


class Fakes:
    """Every stage's work replaced, through pipeline.Steps (no module globals)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.layout = Layout(repo=Path(__file__).resolve().parents[2], cache=tmp / "cache")
        self.src = SourceTree(path=tmp / "linux", version="6.12.117", baseline="b",
                              user_tree=False)
        build_dir = self.layout.build_dir("default")
        build_dir.mkdir(parents=True)
        (build_dir / ".config").write_text("CONFIG_X=y\n")
        self.build_dir = build_dir
        self.steps = pl.Steps(
            prepare_source=lambda *a, **k: self.src,
            apply_series=lambda *a, **k: PatchResult(applied=[], head="h"),
            configure=lambda *a, **k: ConfigResult(
                config_path=build_dir / ".config", changed=False, fragments=[], digest="0" * 64),
            build_kernel=lambda *a, **k: BuildResult(
                build_dir=build_dir, bzimage=build_dir / "bzImage", vmlinux=build_dir / "vmlinux",
                release="6.12.117", objects_built=0, seconds=1.0, log_path=tmp / "b.log",
                headers=build_dir / "usr-headers"),
            probe=lambda bz, log, t: (False, "no kvm in tests"),
            boot_id=lambda: "boot-1",
            lock=lambda path, say: contextlib.nullcontext())


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


def console_run(results: Path, lines: str, status: VmStatus = VmStatus.COMPLETED,
                code: int = 0):  # type: ignore[no-untyped-def]
    def run_vm(spec, command, *, console_log, deadlines, say, **kw):  # type: ignore[no-untyped-def]
        console_log.write_text(lines)
        suite = Path(command.split()[-1]).name.removesuffix(".guest.sh")
        with open(protocol.results_file(results, suite), "a") as out:
            out.write(protocol.GuestResult(nodeid="test_kernel.py::test_a", outcome="passed",
                                           seconds=0.1).to_line())
        return VmOutcome(status=status, exit_code=code, console_log=console_log, seconds=2.0,
                         boot_seconds=1.0)
    return run_vm


def make(f: Fakes, results: Path, accel: str = "tcg", **kw) -> pl.Pipeline:  # type: ignore[no-untyped-def]
    return pl.Pipeline(pl.Options(results_dir=results, accel=accel, **kw), NullRunner(), f.layout,
                       lambda s: None, steps=f.steps)


def test_green_run_writes_every_artifact(fakes, capsys) -> None:  # type: ignore[no-untyped-def]
    results = fakes.tmp / "results"
    fakes.steps.run_vm = console_run(results, (
        "harness: GUEST START\nharness: BEGIN test_kernel.py::test_a\n"
        "harness: END test_kernel.py::test_a outcome=passed debug_locks=1\n"))
    run = make(fakes, results).execute()
    assert run.ok, run.to_json()
    summary = json.loads((results / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == [
        "source", "patches", "config", "build", "guest-build", "accel", "boot:guest"]
    assert summary["counts"]["pass"] == 1
    assert (results / "junit.xml").exists() and (results / "kernel.config").exists()
    assert "-m pytest" in (results / "guest.guest.sh").read_text()
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"results: {results}")
    assert "harness: 1 passed, 0 failed, 0 skipped" in out


def test_patch_conflict_stops_the_run_and_names_the_patch(fakes) -> None:  # type: ignore[no-untyped-def]
    def conflict(*a, **k):  # type: ignore[no-untyped-def]
        raise PatchConflict("0002-io_uring-x.patch", "error: patch failed: io_uring/rsrc.c:12")
    fakes.steps.apply_series = conflict
    run = make(fakes, fakes.tmp / "r").execute()
    assert not run.ok
    assert [s.name for s in run.stages] == ["source", "patches"]
    assert "0002-io_uring-x.patch" in run.stages[-1].detail
    assert "io_uring/rsrc.c:12" in run.stages[-1].detail


def test_kernel_report_fails_the_run_even_when_pytest_passed(fakes) -> None:  # type: ignore[no-untyped-def]
    results = fakes.tmp / "results"
    log = (Path(__file__).parent / "data" / "pipeline-warning.log")
    fakes.steps.run_vm = console_run(results, log.read_text())
    run = make(fakes, results).execute()
    assert not run.ok
    assert any(f.kind == "WARNING" and f.test == "test_kernel.py::test_a" for f in run.findings)


def test_user_tree_gets_its_own_build_directory(fakes) -> None:  # type: ignore[no-untyped-def]
    mine = SourceTree(path=fakes.tmp / "my-linux", version="6.12.117", baseline=None,
                      user_tree=True)
    fakes.steps.prepare_source = lambda *a, **k: mine
    seen: list[Path] = []

    def configure(*a, build_dir, **k):  # type: ignore[no-untyped-def]
        seen.append(build_dir)
        raise RuntimeError("stop here")
    fakes.steps.configure = configure
    run = make(fakes, fakes.tmp / "r").execute()
    # an unexpected exception in a stage is the harness's fault: exit 2
    assert run.stages[-1].status.value == "error"
    assert seen and seen[0] != fakes.layout.build_dir("default")
    assert seen[0].name.startswith("default-")


def repro_console(rounds: int, report_in: int | None) -> str:
    lines = ["harness: GUEST START"]
    for n in range(1, rounds + 1):
        lines += [f"[  {10 * n}.000000] harness: ROUND {n}",
                  "harness: BEGIN test_kernel.py::test_a"]
        if n == report_in:
            lines += [f"[  {10 * n}.500000] " + text for text in (
                "------------[ cut here ]------------",
                "WARNING: CPU: 0 PID: 1 at io_uring/bpf_iter.c:95 io_buf_iter_seq_start+0x1/0x2",
                "Call Trace:", " <TASK>", " io_buf_iter_seq_start+0x1/0x2", " </TASK>",
                "---[ end trace 0000000000000000 ]---")]
        lines.append("harness: END test_kernel.py::test_a outcome=passed debug_locks=1")
    why = "kernel report: WARNING: CPU: 0 PID: 1" if report_in else f"all {rounds} rounds clean"
    lines.append(f"[  {10 * rounds + 5}.000000] harness: REPRO DONE rounds={rounds} {why}")
    return "\r\r\n".join(lines) + "\r\r\n"   # as the console's pty writes it


def test_reproduce_names_the_round_of_the_first_finding(fakes, capsys) -> None:  # type: ignore[no-untyped-def]
    results = fakes.tmp / "results"
    fakes.steps.run_vm = console_run(results, repro_console(3, report_in=3))
    run = make(fakes, results, only=["test_kernel.py::test_a"], repeat=10).execute()
    assert not run.ok          # the bug reproduced
    info = run.info["reproduce:reproduce"]
    assert (info["rounds"], info["finding_round"]) == (3, 3)
    line = (results / "reproduce.reproduce.txt").read_text()
    assert line.startswith("reproduce: test_kernel.py::test_a: first finding in round 3 of 10 "
                           "after 25s")
    assert "WARNING: WARNING in io_buf_iter_seq_start" in line
    assert "export HARNESS_REPEAT=10" in (results / "reproduce.guest.sh").read_text()
    assert line.strip() in capsys.readouterr().out


def test_reproduce_clean_rounds_pass(fakes) -> None:  # type: ignore[no-untyped-def]
    results = fakes.tmp / "results"
    fakes.steps.run_vm = console_run(results, repro_console(4, report_in=None))
    run = make(fakes, results, only=["test_kernel.py::test_a"], repeat=4).execute()
    assert run.ok, run.to_json()
    assert run.info["reproduce:reproduce"]["line"] == (
        "reproduce: test_kernel.py::test_a: no finding in 4 round(s) of 4 "
        "(35s; all 4 rounds clean)")


def test_negative_suite_fails_when_the_loop_runs_past_its_report(fakes) -> None:  # type: ignore[no-untyped-def]
    from harness.bootsuite import boot_suite
    from harness.guest import GuestEnv
    from harness.suites import Suite
    from harness.vm import Accel, VmSpec
    results = fakes.tmp / "results"
    results.mkdir()
    suite = Suite(name="negative-x", selection=("test_kernel.py::test_a",), repeat=3,
                  stop_round=1)
    report = boot_suite(suite, VmSpec(kernel=Path("/k"), accel=Accel.TCG),
                        GuestEnv(repo=Path("/r"), python=Path("/p"), guest_bin=Path("/g"),
                                 kernel_release="6.12", timeout_scale=4),
                        results=results, run_vm=console_run(results, repro_console(2, report_in=2)),
                        lock=contextlib.nullcontext, say=lambda s: None)
    loop = [t for t in report.tests if t.name == "<reproduce loop>"]
    assert len(loop) == 1 and not loop[0].status.ok
    assert "it ran 2 round(s), first finding in round 2" in loop[0].message


def test_accel_probe_runs_once_per_host_boot_and_is_shared(fakes) -> None:  # type: ignore[no-untyped-def]
    from harness.accel import choose_accel
    probes: list[Path] = []

    def probe(bz: Path, log: Path, timeout: float) -> tuple[bool, str]:
        probes.append(bz)
        return True, "KVM boot took 9s"
    kw = dict(bzimage=Path("/bz"), cache=fakes.tmp / "c", console_log=fakes.tmp / "p.log",
              probe=probe, lock=contextlib.nullcontext, say=lambda s: None)
    first = choose_accel("auto", boot_id=lambda: "b1", **kw)   # type: ignore[arg-type]
    again = choose_accel("auto", boot_id=lambda: "b1", **kw)   # type: ignore[arg-type]
    assert first.accel.value == again.accel.value == "kvm" and len(probes) == 1
    assert "probed earlier this host boot" in again.why
    choose_accel("auto", boot_id=lambda: "b2", **kw)           # type: ignore[arg-type]
    assert len(probes) == 2                                    # the host rebooted
    forced = choose_accel("tcg", boot_id=lambda: "b2", **kw)   # type: ignore[arg-type]
    assert forced.accel.value == "tcg" and forced.why == "forced by ACCEL" and len(probes) == 2


def test_a_failed_probe_means_tcg_with_the_reason(fakes) -> None:  # type: ignore[no-untyped-def]
    run = make(fakes, fakes.tmp / "r", accel="auto")
    fakes.steps.run_vm = console_run(fakes.tmp / "r", "harness: GUEST START\n")
    run = make(fakes, fakes.tmp / "r", accel="auto").execute()
    accel = next(s for s in run.stages if s.name == "accel")
    assert accel.detail.startswith("tcg: TCG (software emulation, timeouts x4): no kvm in tests")


def test_dry_run_plans_every_stage_and_touches_nothing(fakes) -> None:  # type: ignore[no-untyped-def]
    results = fakes.tmp / "never"
    p = make(fakes, results, suites="all")
    before = sorted(fakes.tmp.rglob("*"))
    plan = "\n".join(p.plan())
    assert sorted(fakes.tmp.rglob("*")) == before and not results.exists()
    for stage in ("source:", "patches: git am", "config:", "build: make -C", "guest-build: make",
                  "build:negative:", "accel: TCG (forced)", "boot:guest:", "boot:detectors-fatal:",
                  "boot:negative-self-read:", "build:wrap:", "boot:wrap:", "--disable-kvm",
                  "report:"):
        assert stage in plan, stage
    assert "each test its budget + grace" in plan


def test_counts_in_both_summary_lines_agree(fakes, capsys) -> None:  # type: ignore[no-untyped-def]
    def conflict(*a, **k):  # type: ignore[no-untyped-def]
        raise PatchConflict("0002-x.patch", "no")
    fakes.steps.apply_series = conflict
    make(fakes, fakes.tmp / "r").execute()
    out = capsys.readouterr().out
    assert "  tests: 0 passed, 1 failed, 0 skipped (1 stage(s) failed)" in out
    assert "harness: 0 passed, 1 failed, 0 skipped" in out
