"""series-check's reading of checkpatch, from real checkpatch.pl outputs."""

from pathlib import Path

from harness.procs import Completed
from harness.series_check import PatchCheck, checkpatch

DATA = Path(__file__).parent / "data" / "checkpatch"


class Recorded:
    def __init__(self, name: str, rc: int) -> None:
        self.output = (DATA / name).read_text()
        self.rc = rc
        self.argv: list[str] = []

    def run(self, argv, **kw):  # type: ignore[no-untyped-def]
        self.argv = list(argv)
        return Completed(argv=list(argv), returncode=self.rc, output=self.output)


def test_clean_patch() -> None:
    runner = Recorded("clean.out", 0)
    assert checkpatch(runner, Path("/linux"), Path("/p/0003.patch"), Path("/tmp")) == "clean"
    assert "--strict" in runner.argv and "--root=/linux" in runner.argv


def test_problem_is_named() -> None:
    verdict = checkpatch(Recorded("trailing-whitespace.out", 1), Path("/linux"),
                         Path("/p/0002.patch"), Path("/tmp"))
    assert verdict.startswith("total: 1 errors, 0 warnings, 0 checks")
    assert "TRAILING_WHITESPACE" in verdict


def test_patch_verdict_needs_all_three() -> None:
    assert PatchCheck(patch="p", checkpatch="clean", signed_off=True, builds=True).ok
    assert not PatchCheck(patch="p", checkpatch="clean", signed_off=False, builds=True).ok
    assert not PatchCheck(patch="p", checkpatch="clean", signed_off=True, builds=False).ok
    assert not PatchCheck(patch="p", checkpatch="total: 0 errors, 1 warnings", signed_off=True).ok
