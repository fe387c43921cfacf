"""A kernel variant: test-only patches applied on top of the series for one build.

The negative control (kernel-patches/negative/) is built from the same tree and
ccache as the series, into a build directory of its own, and the tree goes back
to the series afterwards.  make decides by mtimes, so switching files back and
forth would rebuild both directories every run; instead

* the series' files get their content *and* mtime back after the variant build,
  so the series' build directory never notices the excursion;
* the variant's files get the mtimes they had when this exact variant (same
  series head, same variant patches) was last applied, so an unchanged variant
  is a no-op build too.  Any other variant state gets fresh mtimes: a build
  directory only ever trusts an old mtime for content it was built from.

A marker in the tree's git directory records what is applied; a run that was
interrupted is undone by the next one (`recover`).  The first build of a
variant directory starts from a copy of the series' build directory, so it is
incremental: only what the variant patches touch is recompiled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError
from .procs import CommandError, Runner

MARKER = "uring-iter-harness-variant"
MEMORY = ".harness-variant.json"


class VariantError(HarnessError):
    pass


@dataclass(frozen=True, kw_only=True)
class Variant:
    name: str
    patches: tuple[Path, ...]

    @classmethod
    def load(cls, directory: Path) -> Variant:
        """kernel-patches/<name>/series lists the variant's patches, in order."""
        series = directory / "series"
        if not series.is_file():
            raise VariantError(f"{series} is missing: list the variant's patches there, one per line")
        names = [line.split("#", 1)[0].strip() for line in series.read_text().splitlines()]
        patches = tuple(directory / n for n in names if n)
        missing = [str(p) for p in patches if not p.is_file()]
        if missing:
            raise VariantError(f"{series} names missing patches: {', '.join(missing)}")
        if not patches:
            raise VariantError(f"{series} lists no patches")
        return cls(name=directory.name, patches=patches)

    def digest(self, head: str) -> str:
        h = hashlib.sha256(head.encode())
        for patch in self.patches:
            h.update(patch.name.encode() + b"\0" + patch.read_bytes())
        return h.hexdigest()


def _git_dir(runner: Runner, tree: Path) -> Path:
    out = runner.run(["git", "-C", str(tree), "rev-parse", "--absolute-git-dir"]).output
    return Path(out.strip())


def _touched(runner: Runner, tree: Path, patches: tuple[Path, ...]) -> list[str]:
    paths: list[str] = []
    for patch in patches:
        out = runner.run(["git", "-C", str(tree), "apply", "--numstat", str(patch)]).output
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[2] not in paths:
                paths.append(parts[2])
    return paths


def _mtimes(tree: Path, paths: list[str]) -> dict[str, int]:
    return {p: (tree / p).stat().st_mtime_ns for p in paths if (tree / p).exists()}


def _set_mtimes(tree: Path, mtimes: dict[str, int]) -> None:
    for path, ns in mtimes.items():
        target = tree / path
        if target.exists():
            os.utime(target, ns=(ns, ns))


def recover(runner: Runner, tree: Path, say: Callable[[str], None]) -> bool:
    """Undo a variant an interrupted run left applied. True if there was one."""
    marker = _git_dir(runner, tree) / MARKER
    if not marker.exists():
        return False
    state = json.loads(marker.read_text())
    files = list(state.get("files", {}))
    say(f"variant: undoing the {state.get('variant', '?')} variant an interrupted run left "
        f"applied ({', '.join(files) or 'no files'})")
    if files:
        runner.run(["git", "-C", str(tree), "checkout", "HEAD", "--", *files])
    _set_mtimes(tree, {k: int(v) for k, v in state.get("files", {}).items()})
    marker.unlink()
    return True


@contextmanager
def applied(runner: Runner, tree: Path, variant: Variant, build_dir: Path,
            say: Callable[[str], None]) -> Iterator[list[str]]:
    """The tree with the variant applied, for building into build_dir.

    Call with the build lock held; the tree must be clean (the series stage
    makes sure).  Yields the paths the variant changes.
    """
    for patch in variant.patches:
        try:
            runner.run(["git", "-C", str(tree), "apply", "--check", str(patch)])
        except CommandError as exc:
            raise VariantError(
                f"{patch} does not apply on top of the series: {exc.output.strip()[-1500:]}\n"
                f"Refresh it: `make tree`, apply it by hand in the tree (git apply -3), fix it "
                f"and write it back with `git diff > {patch}` (then git checkout the tree)"
            ) from exc
    paths = _touched(runner, tree, variant.patches)
    # the revert below is `git checkout`: it must not be able to eat anyone's edits
    dirty = runner.run(["git", "-C", str(tree), "status", "--porcelain", "--", *paths]).output
    if dirty.strip():
        raise VariantError(
            f"{tree} has uncommitted changes in files the {variant.name} variant patches:\n"
            f"{dirty.rstrip()}\nCommit or stash them first; nothing was touched.")
    head = tree_head(runner, tree)
    marker = _git_dir(runner, tree) / MARKER
    series_mtimes = _mtimes(tree, paths)
    marker.write_text(json.dumps({"variant": variant.name, "files": series_mtimes}))
    try:
        for patch in variant.patches:
            runner.run(["git", "-C", str(tree), "apply", str(patch)])
        memory_path = build_dir / MEMORY
        digest = variant.digest(head)
        memory = _memory(memory_path)
        if memory.get("digest") == digest and set(memory.get("mtimes", {})) == set(paths):
            _set_mtimes(tree, {k: int(v) for k, v in memory["mtimes"].items()})
        else:
            build_dir.mkdir(parents=True, exist_ok=True)
            memory_path.write_text(json.dumps({"digest": digest, "mtimes": _mtimes(tree, paths),
                                               "series_head": head}))
        yield paths
    finally:
        runner.run(["git", "-C", str(tree), "checkout", "HEAD", "--", *paths])
        _set_mtimes(tree, series_mtimes)
        marker.unlink(missing_ok=True)


def tree_head(runner: Runner, tree: Path) -> str:
    return runner.run(["git", "-C", str(tree), "rev-parse", "HEAD"]).output.strip()


def seed_build_dir(series_build: Path, variant_build: Path, say: Callable[[str], None],
                   series_head: str | None = None) -> bool:
    """Start a variant's build from a copy of the series' build directory (mtimes
    kept), so that it is incremental: on its first build, and again when the
    series changed since the variant was last built (@series_head, the tree's
    HEAD, against the one `applied` recorded) or its configuration did. The
    variant's own build would otherwise recompile everything the series change
    reached, which the series' build has just done (a header of io_uring or a
    UAPI header: hundreds of objects), where the copy costs seconds. False if
    the variant's build directory was kept."""
    if not (series_build / "vmlinux").exists():
        return False
    memory = variant_build / MEMORY
    kept = memory.read_text() if memory.exists() else None
    if (variant_build / "vmlinux").exists():
        built_on = _memory(memory).get("series_head")
        if _read(variant_build / ".config") != _read(series_build / ".config"):
            why = "the series' configuration changed"
        elif series_head and built_on and built_on != series_head:
            why = f"the series changed since it was built on {built_on[:12]}"
        else:
            return False
        # the variant's files must come out newer than the copied objects
        kept = None
    else:
        why = "first build of this variant"
    say(f"variant: seeding {variant_build} from {series_build} ({why})")
    if variant_build.exists():
        shutil.rmtree(variant_build)
    shutil.copytree(series_build, variant_build, symlinks=True)
    if kept is not None:
        memory.write_text(kept)
    return True


def _memory(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _read(path: Path) -> str | None:
    return path.read_text(errors="replace") if path.exists() else None
