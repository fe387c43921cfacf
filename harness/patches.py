"""Patches: kernel-patches/series applied with `git am` on a branch.

The branch `series` starts at the baseline tag.  Applying is skipped when
the branch already holds exactly this series (so an unchanged series
touches no file and rebuilds nothing).  The harness refuses to throw away
work: uncommitted edits, or commits on the branch that were never
exported, stop the run with what to do about them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import variant
from .errors import EXIT_FAILED, HarnessError
from .layout import SERIES_BRANCH
from .procs import Runner
from .source import GIT_IDENTITY, SourceTree

STATE_FILE = "uring-iter-harness-series"


class PatchError(HarnessError):
    pass


class BadSeries(PatchError):
    """kernel-patches/series names patches that are not there (exit 1)."""

    exit_code = EXIT_FAILED


class PatchConflict(PatchError):
    exit_code = EXIT_FAILED   # the series does not apply: its fault, not the harness's

    def __init__(self, patch: str, reason: str) -> None:
        self.patch = patch
        self.reason = reason
        super().__init__(f"patch {patch} does not apply:\n{reason}\n"
                         "The tree was left clean at the last patch that applied. "
                         "Rebase the patch (make tree, fix, make export) and rerun.")


@dataclass(frozen=True, kw_only=True)
class PatchResult:
    applied: list[str] = field(default_factory=list)
    head: str = ""
    reused: bool = False  # the branch already held this series
    skipped_reason: str | None = None


def read_series(patch_dir: Path) -> list[Path]:
    series = patch_dir / "series"
    if not series.exists():
        raise BadSeries(f"{series} is missing: it lists the patches in order "
                         "(an empty file means no patches)")
    patches = []
    for lineno, raw in enumerate(series.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        path = patch_dir / line
        if not path.is_file():
            raise BadSeries(f"{series}:{lineno}: {line} does not exist")
        patches.append(path)
    return patches


def series_digest(patches: list[Path]) -> str:
    h = hashlib.sha256()
    for p in patches:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _git(runner: Runner, tree: Path, *args: str, check: bool = True) -> str:
    return runner.run(["git", *GIT_IDENTITY, *args], cwd=tree, check=check).output.strip()


def _git_dir(runner: Runner, tree: Path) -> Path:
    out = _git(runner, tree, "rev-parse", "--absolute-git-dir")
    return Path(out.splitlines()[-1])


def _dirty(runner: Runner, tree: Path) -> list[str]:
    out = _git(runner, tree, "status", "--porcelain", "--untracked-files=normal")
    return [l for l in out.splitlines() if l.strip()]


def apply_series(runner: Runner, source: SourceTree, patch_dir: Path,
                 say: Callable[[str], None], force: bool = False,
                 first: int | None = None) -> PatchResult:
    """Applies the series (or only its `first` patches, for bisecting)."""
    patches = read_series(patch_dir)
    if first is not None:
        patches = patches[:first]
    if source.user_tree or source.baseline is None:
        return PatchResult(skipped_reason="KERNEL_SRC tree is used as it is")
    tree = source.path
    digest = series_digest(patches)
    state = _git_dir(runner, tree) / STATE_FILE
    head = _git(runner, tree, "rev-parse", "HEAD")
    branch = _git(runner, tree, "rev-parse", "--abbrev-ref", "HEAD")
    recorded = state.read_text().split() if state.exists() else []

    # our own excursion (a variant build) that a killed run did not undo
    variant.recover(runner, tree, say)
    dirty = _dirty(runner, tree)
    if dirty and force:
        say(f"patches: FORCE: discarding uncommitted changes in {tree}: {len(dirty)} path(s)")
        _git(runner, tree, "reset", "-q", "--hard")
        _git(runner, tree, "clean", "-q", "-fd")
        dirty = []
    if dirty:
        raise PatchError(
            f"the kernel tree {tree} has uncommitted changes:\n  " + "\n  ".join(dirty[:10])
            + "\nCommit them there and run `make export` to turn them into patches, "
            "or discard them (git -C <tree> checkout -- . / stash); nothing was touched.")
    if recorded == [digest, head] and branch == SERIES_BRANCH:
        say(f"patches: {len(patches)} patch(es) already applied, tree unchanged")
        return PatchResult(applied=[p.name for p in patches], head=head, reused=True)
    if branch == SERIES_BRANCH and recorded and recorded[1] != head and not force:
        raise PatchError(
            f"branch {SERIES_BRANCH} in {tree} has commits that are not in "
            f"{patch_dir} (HEAD {head[:12]}, last applied {recorded[1][:12]}).\n"
            "Run `make export` to keep them as patches, or `make run FORCE=1` to drop them.")
    if (_git_dir(runner, tree) / "rebase-apply").exists():
        _git(runner, tree, "am", "--abort", check=False)
    before = _patched_files(runner, tree, source.baseline)
    _git(runner, tree, "checkout", "-q", "-B", SERIES_BRANCH, source.baseline)
    applied = []
    for patch in patches:
        done = runner.run(["git", *GIT_IDENTITY, "am", "-q", "--keep-cr", str(patch)],
                          cwd=tree, check=False)
        if done.returncode != 0:
            _git(runner, tree, "am", "--abort", check=False)
            state.unlink(missing_ok=True)
            raise PatchConflict(patch.name, done.output.strip())
        applied.append(patch.name)
        say(f"patches: applied {patch.name}")
    head = _git(runner, tree, "rev-parse", "HEAD")
    kept = _keep_mtimes(runner, tree, before)
    state.write_text(f"{digest} {head}\n")
    say(f"patches: {len(applied)} patch(es) on {source.baseline}, HEAD {head[:12]}"
        + (f"; {kept} unchanged file(s) kept their mtimes" if kept else ""))
    return PatchResult(applied=applied, head=head)


def _blobs(runner: Runner, tree: Path, rev: str, paths: list[str]) -> dict[str, str]:
    """The blob id of each of @paths in @rev (absent paths left out)."""
    if not paths:
        return {}
    out = _git(runner, tree, "ls-tree", "-r", rev, "--", *paths)
    blobs = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        blobs[path] = meta.split()[2]
    return blobs


def _patched_files(runner: Runner, tree: Path, baseline: str) -> dict[str, tuple[str, int]]:
    """What the series now applied changed, by path: (blob id, mtime)."""
    out = _git(runner, tree, "diff", "--name-only", baseline, "HEAD", check=False)
    paths = [p for p in out.splitlines() if p and (tree / p).is_file()]
    return {p: (blob, (tree / p).stat().st_mtime_ns)
            for p, blob in _blobs(runner, tree, "HEAD", paths).items()}


def _keep_mtimes(runner: Runner, tree: Path, before: dict[str, tuple[str, int]]) -> int:
    """Re-applying a series rewrites every file it patches. Those that came out
    as they were get their old mtime back, so that make rebuilds only what a
    patch really changed (editing the selftest patch then relinks no kernel)."""
    now = _blobs(runner, tree, "HEAD", list(before))
    kept = 0
    for path, (blob, mtime) in before.items():
        if now.get(path) == blob and (tree / path).is_file():
            os.utime(tree / path, ns=(mtime, mtime))
            kept += 1
    return kept


def export_series(runner: Runner, source: SourceTree, patch_dir: Path,
                  say: Callable[[str], None]) -> list[str]:
    """Writes baseline..HEAD back as numbered patches plus the series file."""
    if source.baseline is None:
        raise PatchError("export needs the harness-prepared tree (unset KERNEL_SRC)")
    tree = source.path
    dirty = _dirty(runner, tree)
    if dirty:
        raise PatchError(f"commit your changes in {tree} first:\n  " + "\n  ".join(dirty[:10]))
    cover = patch_dir / "0000-cover-letter.patch"
    cover_text = cover.read_text() if cover.exists() else None
    old = [p for p in patch_dir.glob("[0-9][0-9][0-9][0-9]-*.patch") if p != cover]
    count = int(_git(runner, tree, "rev-list", "--count", f"{source.baseline}..HEAD"))
    if count == 0:
        raise PatchError(f"no commits on top of {source.baseline} in {tree}: nothing to export")
    for p in old:
        p.unlink()
    # the cover letter's "[PATCH v2 0/7]" says which version of the series this is
    version = re.search(r"^Subject: \[(.+?) 0+/\d+\]", cover_text or "", re.M)
    prefix = ["--subject-prefix", version.group(1)] if version else []
    out = _git(runner, tree, "format-patch", "--no-signature", "--zero-commit", *prefix,
               "-o", str(patch_dir), f"{source.baseline}..HEAD")
    names = [Path(line).name for line in out.splitlines() if line.endswith(".patch")]
    if cover_text is not None:
        cover.write_text(cover_text)
    (patch_dir / "series").write_text("".join(n + "\n" for n in names))
    head = _git(runner, tree, "rev-parse", "HEAD")
    digest = series_digest([patch_dir / n for n in names])
    (_git_dir(runner, tree) / STATE_FILE).write_text(f"{digest} {head}\n")
    say(f"export: wrote {len(names)} patch(es) and the series file to {patch_dir}")
    return names
