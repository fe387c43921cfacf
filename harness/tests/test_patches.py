import os
import subprocess
from pathlib import Path

import pytest

from harness.patches import (PatchConflict, PatchError, apply_series, export_series,
                             read_series)
from harness.procs import SubprocessRunner
from harness.source import SourceTree

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def git(tree: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=tree, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> SourceTree:
    src = tmp_path / "linux"
    src.mkdir()
    (src / "Makefile").write_text("VERSION = 6\n")
    (src / "io_uring.c").write_text("int a;\nint b;\nint c;\n")
    git(src, "init", "-q", "-b", "baseline")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "base")
    git(src, "tag", "baseline-x")
    return SourceTree(path=src, version="6", baseline="baseline-x", user_tree=False)


def make_patches(tree: SourceTree, out: Path, edits: list[tuple[str, str]]) -> None:
    src = tree.path
    git(src, "checkout", "-q", "-b", "scratch", "baseline-x")
    for text, msg in edits:
        (src / "io_uring.c").write_text(text)
        git(src, "commit", "-qam", msg)
    out.mkdir(exist_ok=True)
    names = git(src, "format-patch", "-o", str(out), "baseline-x..scratch").splitlines()
    (out / "series").write_text("".join(Path(n).name + "\n" for n in names))
    git(src, "checkout", "-q", "baseline")
    git(src, "branch", "-q", "-D", "scratch")


def test_apply_then_reuse_touches_nothing(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one"), ("int A;\nint B;\nint c;\n", "two")])
    runner, log = SubprocessRunner(), []
    first = apply_series(runner, tree, pd, log.append)
    assert first.applied == ["0001-one.patch", "0002-two.patch"] and not first.reused
    mtime = (tree.path / "io_uring.c").stat().st_mtime_ns
    second = apply_series(runner, tree, pd, log.append)
    assert second.reused and second.head == first.head
    assert (tree.path / "io_uring.c").stat().st_mtime_ns == mtime


def test_conflict_names_patch_and_leaves_tree_clean(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    bad = pd / "0002-bad.patch"
    bad.write_text((pd / "0001-one.patch").read_text().replace("Subject: [PATCH] one",
                                                               "Subject: [PATCH] bad"))
    (pd / "series").write_text("0001-one.patch\n0002-bad.patch\n")
    with pytest.raises(PatchConflict) as err:
        apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    assert err.value.patch == "0002-bad.patch"
    assert "patch failed" in err.value.reason or "does not apply" in err.value.reason
    assert git(tree.path, "status", "--porcelain") == ""
    assert not (Path(git(tree.path, "rev-parse", "--absolute-git-dir")) / "rebase-apply").exists()


def test_uncommitted_edits_are_never_thrown_away(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    (tree.path / "io_uring.c").write_text("my work\n")
    with pytest.raises(PatchError, match="uncommitted changes"):
        apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    assert (tree.path / "io_uring.c").read_text() == "my work\n"


def test_unexported_commits_stop_the_run(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    (tree.path / "io_uring.c").write_text("int a;\nint B;\nint C;\n")
    git(tree.path, "commit", "-qam", "local fix")
    pd.joinpath("series").write_text(pd.joinpath("series").read_text() + "\n")  # series touched
    pd.joinpath("0001-one.patch").write_text(pd.joinpath("0001-one.patch").read_text() + "\n")
    with pytest.raises(PatchError, match="make export"):
        apply_series(SubprocessRunner(), tree, pd, lambda s: None)


def test_export_round_trip(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    (pd / "0000-cover-letter.patch").write_text("cover\n")
    apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    (tree.path / "io_uring.c").write_text("int a;\nint B;\nint C;\n")
    git(tree.path, "commit", "-qam", "io_uring: second change")
    names = export_series(SubprocessRunner(), tree, pd, lambda s: None)
    assert names == ["0001-one.patch", "0002-io_uring-second-change.patch"]
    assert [p.name for p in read_series(pd)] == names
    assert (pd / "0000-cover-letter.patch").read_text() == "cover\n"
    # the exported series is what the branch holds: the next run reuses it
    assert apply_series(SubprocessRunner(), tree, pd, lambda s: None).reused


def test_missing_series_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match="series is missing"):
        read_series(tmp_path)
    (tmp_path / "series").write_text("# comment\n0001-x.patch\n")
    with pytest.raises(PatchError, match="series:2: 0001-x.patch does not exist"):
        read_series(tmp_path)


def test_force_discards_local_state(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    (tree.path / "io_uring.c").write_text("scratch\n")
    (tree.path / "new.c").write_text("scratch\n")
    res = apply_series(SubprocessRunner(), tree, pd, lambda s: None, force=True)
    assert res.reused and not (tree.path / "new.c").exists()
    assert (tree.path / "io_uring.c").read_text() == "int a;\nint B;\nint c;\n"


def test_export_keeps_the_cover_letters_version(tree: SourceTree, tmp_path: Path) -> None:
    pd = tmp_path / "patches"
    make_patches(tree, pd, [("int a;\nint B;\nint c;\n", "one")])
    cover = "Subject: [PATCH v2 0/1] io_uring: one\n\nbody\n"
    (pd / "0000-cover-letter.patch").write_text(cover)
    apply_series(SubprocessRunner(), tree, pd, lambda s: None)
    export_series(SubprocessRunner(), tree, pd, lambda s: None)
    assert "Subject: [PATCH v2] one" in (pd / "0001-one.patch").read_text()
    assert (pd / "0000-cover-letter.patch").read_text() == cover


def test_reapplying_keeps_the_mtimes_of_files_that_did_not_change(tree: SourceTree,
                                                                   tmp_path: Path) -> None:
    """A series changed in one patch (say the selftest's) is applied again from the
    baseline; the files the other patches touch come out as before and keep their
    mtimes, so that make rebuilds nothing for them."""
    src = tree.path
    (src / "test.c").write_text("int t;\n")
    git(src, "add", "test.c")
    git(src, "commit", "-qm", "a test file")
    git(src, "tag", "-f", "baseline-x")

    def series(pd: Path, test_text: str) -> Path:
        git(src, "checkout", "-q", "-b", "scratch", "baseline-x")
        (src / "io_uring.c").write_text("int a;\nint B;\nint c;\n")
        git(src, "commit", "-qam", "kernel")
        (src / "test.c").write_text(test_text)
        git(src, "commit", "-qam", "test")
        pd.mkdir()
        names = git(src, "format-patch", "-o", str(pd), "baseline-x..scratch").splitlines()
        (pd / "series").write_text("".join(Path(n).name + "\n" for n in names))
        git(src, "checkout", "-q", "baseline")
        git(src, "branch", "-q", "-D", "scratch")
        return pd

    v1, v2 = series(tmp_path / "v1", "int t = 1;\n"), series(tmp_path / "v2", "int t = 2;\n")
    said: list[str] = []
    apply_series(SubprocessRunner(), tree, v1, said.append)
    old = 1_000_000_000 * 10**9
    for name in ("io_uring.c", "test.c"):
        os.utime(src / name, ns=(old, old))
    apply_series(SubprocessRunner(), tree, v2, said.append)
    assert (src / "io_uring.c").stat().st_mtime_ns == old
    assert (src / "test.c").stat().st_mtime_ns != old
    assert (src / "test.c").read_text() == "int t = 2;\n"
    assert "1 unchanged file(s) kept their mtimes" in said[-1]
