"""series-check's reading of checkpatch, from real checkpatch.pl outputs."""

from pathlib import Path

from harness.procs import Completed
from harness.series_check import PatchCheck, checkpatch, verbatim_uapi_sync

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


SYNC = """Subject: [PATCH 6/7] tools headers UAPI: Sync linux/io_uring.h

--- a/tools/include/uapi/linux/io_uring.h
+++ b/tools/include/uapi/linux/io_uring.h
@@ -1 +1 @@
-#define A 1
+#define A (1U << 0)
"""


def _tree(tmp_path: Path, copy: str) -> Path:
    for rel, text in (("include/uapi/linux/io_uring.h", "#define A (1U << 0)\n"),
                      ("tools/include/uapi/linux/io_uring.h", copy)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_verbatim_uapi_sync_is_not_checkpatched(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "#define A (1U << 0)\n")
    assert verbatim_uapi_sync(SYNC, tree) == "verbatim copy of include/uapi/linux/io_uring.h"
    check = PatchCheck(patch="p", checkpatch="clean (verbatim copy of x: not checked)",
                       signed_off=True, builds=True)
    assert check.ok


def test_a_sync_that_is_not_verbatim_is_checkpatched(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "#define A BIT(0)\n")
    assert verbatim_uapi_sync(SYNC, tree) is None
    # a patch touching anything else is checked, even with a verbatim copy in it
    other = SYNC + "--- a/io_uring/bpf_iter.c\n+++ b/io_uring/bpf_iter.c\n"
    assert verbatim_uapi_sync(other, _tree(tmp_path, "#define A (1U << 0)\n")) is None
