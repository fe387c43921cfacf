"""harness.variant on a real git tree: apply, build mtimes, revert, recovery."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import variant
from harness.procs import SubprocessRunner

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
SERIES = "static int start(void)\n{\n\tif (!mutex_trylock(&l))\n\t\treturn -EDEADLK;\n\treturn 0;\n}\n"
UNSAFE = "static int start(void)\n{\n\tmutex_lock(&l);\n\treturn 0;\n}\n"


def git(tree: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=tree, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "linux"
    (src / "io_uring").mkdir(parents=True)
    (src / "io_uring" / "bpf_iter.c").write_text(SERIES)
    (src / "Makefile").write_text("VERSION = 6\n")
    git(src, "init", "-q", "-b", "series")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "series")
    # the variant patch, as `git format-patch` writes it
    (src / "io_uring" / "bpf_iter.c").write_text(UNSAFE)
    git(src, "commit", "-qam", "NEGATIVE CONTROL: sleep")
    out = tmp_path / "negative"
    name = git(src, "format-patch", "-o", str(out), "-1").strip()
    (out / "series").write_text(f"# test only\n{Path(name).name}\n")
    git(src, "reset", "-q", "--hard", "HEAD~1")
    old = 1_000_000_000 * 10**9
    os.utime(src / "io_uring" / "bpf_iter.c", ns=(old, old))
    return src


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_applied_then_series_content_and_mtime_come_back(tree: Path, tmp_path: Path) -> None:
    v = variant.Variant.load(tmp_path / "negative")
    f = tree / "io_uring" / "bpf_iter.c"
    before = mtime(f)
    with variant.applied(SubprocessRunner(), tree, v, tmp_path / "build-neg", print) as paths:
        assert paths == ["io_uring/bpf_iter.c"]
        assert f.read_text() == UNSAFE
        assert (tree / ".git" / variant.MARKER).exists()
        first = mtime(f)
    assert f.read_text() == SERIES and mtime(f) == before
    assert git(tree, "status", "--porcelain") == ""
    assert not (tree / ".git" / variant.MARKER).exists()
    # the same variant on the same head: the variant's own mtime, a no-op build
    with variant.applied(SubprocessRunner(), tree, v, tmp_path / "build-neg", print):
        assert mtime(f) == first
    # another head: fresh mtimes, the variant build directory must rebuild
    (tree / "Makefile").write_text("VERSION = 7\n")
    git(tree, "commit", "-qam", "series v2")
    with variant.applied(SubprocessRunner(), tree, v, tmp_path / "build-neg", print):
        assert mtime(f) != first
        memory = json.loads((tmp_path / "build-neg" / variant.MEMORY).read_text())
        assert memory["mtimes"]["io_uring/bpf_iter.c"] == mtime(f)


def test_reverted_even_when_the_build_fails(tree: Path, tmp_path: Path) -> None:
    v = variant.Variant.load(tmp_path / "negative")
    with pytest.raises(RuntimeError):
        with variant.applied(SubprocessRunner(), tree, v, tmp_path / "b", print):
            raise RuntimeError("make failed")
    assert (tree / "io_uring" / "bpf_iter.c").read_text() == SERIES


def test_interrupted_run_is_recovered(tree: Path, tmp_path: Path) -> None:
    v = variant.Variant.load(tmp_path / "negative")
    f = tree / "io_uring" / "bpf_iter.c"
    before = mtime(f)
    ctx = variant.applied(SubprocessRunner(), tree, v, tmp_path / "b", print)
    ctx.__enter__()   # killed here: never exits
    assert f.read_text() == UNSAFE
    said: list[str] = []
    assert variant.recover(SubprocessRunner(), tree, said.append)
    assert f.read_text() == SERIES and mtime(f) == before
    assert "negative variant" in said[0]
    assert not variant.recover(SubprocessRunner(), tree, said.append)


def test_uncommitted_edits_in_patched_files_are_refused(tree: Path, tmp_path: Path) -> None:
    v = variant.Variant.load(tmp_path / "negative")
    f = tree / "io_uring" / "bpf_iter.c"
    f.write_text(SERIES + "/* mine */\n")
    with pytest.raises(variant.VariantError, match="uncommitted changes"):
        with variant.applied(SubprocessRunner(), tree, v, tmp_path / "b", print):
            pass
    assert f.read_text().endswith("/* mine */\n")


def test_a_patch_that_does_not_apply_names_itself(tree: Path, tmp_path: Path) -> None:
    v = variant.Variant.load(tmp_path / "negative")
    (tree / "io_uring" / "bpf_iter.c").write_text("int other;\n")
    git(tree, "commit", "-qam", "series changed under the variant")
    with pytest.raises(variant.VariantError, match="does not apply on top of the series"):
        with variant.applied(SubprocessRunner(), tree, v, tmp_path / "b", print):
            pass
    assert git(tree, "status", "--porcelain") == ""


def test_series_file_problems_are_explained(tmp_path: Path) -> None:
    with pytest.raises(variant.VariantError, match="is missing"):
        variant.Variant.load(tmp_path)
    (tmp_path / "series").write_text("0001-gone.patch\n")
    with pytest.raises(variant.VariantError, match="names missing patches"):
        variant.Variant.load(tmp_path)


def test_seed_copies_the_series_build_once(tmp_path: Path) -> None:
    series, neg = tmp_path / "build", tmp_path / "build-neg"
    (series / "io_uring").mkdir(parents=True)
    (series / "vmlinux").write_text("elf")
    (series / "io_uring" / "bpf_iter.o").write_text("o")
    os.utime(series / "io_uring" / "bpf_iter.o", ns=(5 * 10**18, 5 * 10**18))
    (series / ".config").write_text("CONFIG_USER_NS=y\n")
    assert variant.seed_build_dir(series, neg, print)
    assert mtime(neg / "io_uring" / "bpf_iter.o") == 5 * 10**18
    assert not variant.seed_build_dir(series, neg, print)


def test_seed_again_after_the_series_config_changed(tmp_path: Path) -> None:
    """A config change would make the variant's own build a full rebuild: the
    series' build, configured the same way, is copied again instead."""
    series, neg = tmp_path / "build", tmp_path / "build-neg"
    series.mkdir()
    (series / "vmlinux").write_text("new elf")
    (series / ".config").write_text("CONFIG_USER_NS=y\n")
    neg.mkdir()
    (neg / "vmlinux").write_text("old elf")
    (neg / ".config").write_text("# CONFIG_USER_NS is not set\n")
    (neg / variant.MEMORY).write_text('{"digest": "d", "mtimes": {"io_uring/bpf_iter.c": 1}}')
    said: list[str] = []
    assert variant.seed_build_dir(series, neg, said.append)
    assert (neg / "vmlinux").read_text() == "new elf"
    # the old mtimes of the variant's files would hide them from make: forgotten
    assert not (neg / variant.MEMORY).exists()
    assert "configuration changed" in said[0]
    assert not variant.seed_build_dir(series, neg, said.append)


def test_seed_again_after_the_series_changed(tree: Path, tmp_path: Path) -> None:
    """A series change reaching many objects (a header) would be compiled again
    by each variant: a variant last built on another series head starts again
    from the series' build, one built on this head keeps its own."""
    series, neg = tmp_path / "build", tmp_path / "build-neg"
    series.mkdir()
    (series / "vmlinux").write_text("series elf")
    (series / ".config").write_text("CONFIG_USER_NS=y\n")
    runner = SubprocessRunner()
    v = variant.Variant.load(tmp_path / "negative")
    head = variant.tree_head(runner, tree)
    with variant.applied(runner, tree, v, neg, print):
        (neg / "vmlinux").write_text("variant elf")
        (neg / ".config").write_text("CONFIG_USER_NS=y\n")
    assert json.loads((neg / variant.MEMORY).read_text())["series_head"] == head
    assert not variant.seed_build_dir(series, neg, print, series_head=head)
    assert (neg / "vmlinux").read_text() == "variant elf"

    (tree / "Makefile").write_text("VERSION = 7\n")
    git(tree, "commit", "-qam", "series v2")
    new_head = variant.tree_head(runner, tree)
    said: list[str] = []
    assert variant.seed_build_dir(series, neg, said.append, series_head=new_head)
    assert (neg / "vmlinux").read_text() == "series elf"
    assert f"built on {head[:12]}" in said[0]
    # forgotten: the variant's files get fresh mtimes, newer than the copy
    assert not (neg / variant.MEMORY).exists()
    with variant.applied(runner, tree, v, neg, print):
        pass
    assert json.loads((neg / variant.MEMORY).read_text())["series_head"] == new_head
    assert not variant.seed_build_dir(series, neg, print, series_head=new_head)


def test_seed_keeps_a_variant_built_before_heads_were_recorded(tmp_path: Path) -> None:
    series, neg = tmp_path / "build", tmp_path / "build-neg"
    for d in (series, neg):
        d.mkdir()
        (d / "vmlinux").write_text(d.name)
        (d / ".config").write_text("CONFIG_USER_NS=y\n")
    (neg / variant.MEMORY).write_text('{"digest": "d", "mtimes": {}}')
    assert not variant.seed_build_dir(series, neg, print, series_head="abc")
    (neg / variant.MEMORY).write_text("not json")
    assert not variant.seed_build_dir(series, neg, print, series_head="abc")
