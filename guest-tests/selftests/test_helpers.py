"""Self-tests of the helper runner (helpers.py) and SoftAssert, on the host.

The "programs" are small shell scripts written into a stand-in HARNESS_GUEST_BIN:
each prints KTAP and exits by the convention (0 pass, 1 fail, 77 skip).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import EXIT_SKIP, Finished, Helpers, judge, run_bounded
from softassert import SoftAssert


@dataclass
class FixedBudget:
    seconds: float = 30.0

    def remaining(self) -> float:
        return self.seconds


def finished(output: str, returncode: int | None = 0, timed_out: bool = False) -> Finished:
    return Finished(argv=("prog", "a"), returncode=returncode, timed_out=timed_out,
                    output=output, seconds=0.1)


KTAP = "TAP version 13\n1..1\n"


def program(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def helpers(tmp_path: Path) -> Helpers:
    (tmp_path / "bin").mkdir()
    return Helpers(guest_bin=tmp_path / "bin", budget=FixedBudget(), timeout_scale=4.0,
                   results_dir=tmp_path / "results", tmp_path=tmp_path)


def test_run_bounded_keeps_output_and_status() -> None:
    done = run_bounded(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (done.returncode, done.timed_out) == (3, False)
    assert done.lines == ["out", "err"]
    assert "exited 3" in done.describe()


def test_run_bounded_returns_within_its_deadline() -> None:
    done = run_bounded(["sh", "-c", "echo started; exec sleep 30"], timeout=0.4)
    assert done.timed_out and done.returncode == -9
    assert done.seconds < 5
    assert done.lines == ["started"]
    assert "did not finish" in done.describe()


def test_judge_passes_skips_and_fails() -> None:
    ok = finished(KTAP + "rec x=1\nok 1 prog\n")
    assert judge(ok) is ok
    with pytest.raises(pytest.skip.Exception, match=r"prog a: no FUSE here"):
        judge(finished(KTAP + "ok 1 prog # SKIP no FUSE here\n", EXIT_SKIP))
    with pytest.raises(pytest.fail.Exception, match=r"exited 1(.|\n)*not ok 1 prog # attach"):
        judge(finished(KTAP + "not ok 1 prog # attach\n", 1))


@pytest.mark.parametrize("output,returncode,words", [
    # the exit status and the result line must say the same
    (KTAP + "not ok 1 prog # attach\n", 0, "disagrees with the exit status"),
    (KTAP + "ok 1 prog\n", EXIT_SKIP, "disagrees with the exit status"),
    (KTAP + "ok 1 prog # SKIP why\n", 0, "disagrees with the exit status"),
    (KTAP + "step walk\n", 0, "no KTAP result line"),
    (KTAP + "step walk\n", EXIT_SKIP, "no KTAP result line"),
    (KTAP + "ok 1 prog\n", -11, "died of signal 11"),
])
def test_judge_fails_what_breaks_the_convention(output: str, returncode: int,
                                                words: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=words):
        judge(finished(output, returncode))


def test_judge_describes_a_hang() -> None:
    with pytest.raises(pytest.fail.Exception, match="stuck in the kernel"):
        judge(finished(KTAP + "step walk buf\n", None, timed_out=True))


def test_helpers_run_keeps_every_run(helpers: Helpers, tmp_path: Path) -> None:
    program(helpers.guest_bin, "echo_args", f'printf "{KTAP}"; echo "args $*"; echo "ok 1 echo_args"')
    first = helpers.run("echo_args", "huge", "rounds=3")
    assert "args huge rounds=3 tscale=4" in first.lines
    helpers.run("echo_args", "huge", "rounds=3")
    kept = tmp_path / "results" / "helpers" / "echo_args-huge.txt"
    assert first.saved == kept
    lines = kept.read_text().splitlines()
    assert lines.count("args huge rounds=3 tscale=4") == 2
    assert [line.startswith("# ") for line in lines].count(True) == 2
    assert str(kept) in first.describe()


def test_helpers_run_skips_and_fails(helpers: Helpers) -> None:
    program(helpers.guest_bin, "skipper", f'printf "{KTAP}ok 1 skipper # SKIP no UAPI\\n"; exit 77')
    with pytest.raises(pytest.skip.Exception, match="skipper: no UAPI"):
        helpers.run("skipper")
    with pytest.raises(pytest.fail.Exception, match="missing: build with make"):
        helpers.run("not_built")


def test_helpers_label_is_a_file_name(helpers: Helpers, tmp_path: Path) -> None:
    program(helpers.guest_bin, "pin", f'printf "{KTAP}ok 1 pin\\n"')
    done = helpers.run("pin", "/sys/fs/bpf/x y")
    assert done.saved == tmp_path / "results" / "helpers" / "pin-_sys_fs_bpf_x_y.txt"


def test_helpers_start_keeps_output(helpers: Helpers, tmp_path: Path) -> None:
    program(helpers.guest_bin, "unsafe_x", 'echo "unsafe order=x res=0"')
    started = helpers.start("unsafe_x")
    assert started.proc.wait(timeout=30) == 0
    assert started.output == tmp_path / "results" / "helpers" / "unsafe_x.txt"
    assert "unsafe order=x res=0" in started.output.read_text().splitlines()


def test_soft_assert_fails_once_with_everything() -> None:
    checks = SoftAssert(limit=2)
    assert checks.eq("same", 1, 1) and checks.true("fine", True)
    checks.eq("slot 2: bv_len", 4096, 4095)
    checks.eq("ptr", 0x10, 0x20, hexa=True)
    checks.true("the final call is not last", False)
    with pytest.raises(pytest.fail.Exception) as failure:
        checks.done("the helper's output")
    text = str(failure.value)
    assert "slot 2: bv_len: got 4096, expected 4095" in text
    assert "ptr: got 0x10, expected 0x20" in text
    assert "... and 1 more" in text and "the helper's output" in text
    SoftAssert().done("nothing failed: no exception")
