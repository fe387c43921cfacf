"""Source: a git tree of the pristine kernel that patches apply to.

Debian's tarball is unpacked once into the cache and committed as a
baseline, tagged, so `git am` works and a developer can edit and export.
KERNEL_SRC points at a developer's own git tree instead, which is used as it
is: the harness never resets or patches a tree it did not create.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import HarnessError
from .layout import BASELINE_TAG, DEBIAN_TARBALL, KERNEL_VERSION, Layout
from .procs import Runner

GIT_IDENTITY = ["-c", "user.name=uring-iter-harness", "-c", "user.email=harness@localhost"]


class SourceError(HarnessError):
    pass


@dataclass(frozen=True, kw_only=True)
class SourceTree:
    path: Path
    version: str
    baseline: str | None  # tag the series applies on; None for a user's tree
    user_tree: bool


def makefile_version(tree: Path) -> str:
    text = (tree / "Makefile").read_text(errors="replace")[:2000]
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", text, re.M)
        fields[key] = m.group(1) if m else ""
    return "{VERSION}.{PATCHLEVEL}.{SUBLEVEL}{EXTRAVERSION}".format(**fields)


def _git(runner: Runner, tree: Path, *args: str, check: bool = True) -> str:
    return runner.run(["git", *GIT_IDENTITY, *args], cwd=tree, check=check).output


def has_baseline(runner: Runner, tree: Path) -> bool:
    if not (tree / ".git").exists():
        return False
    done = runner.run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{BASELINE_TAG}"],
                      cwd=tree, check=False)
    return done.returncode == 0


def _drop_debian_ignore_all(tree: Path) -> bool:
    """Debian's tarball ignores every top-level path, hiding new files."""
    gitignore = tree / ".gitignore"
    text = gitignore.read_text()
    marker = "#\n# Debian packaging"
    if marker not in text:
        return False
    gitignore.write_text(text[:text.index(marker)].rstrip("\n") + "\n")
    return True


def unpack_debian_source(runner: Runner, layout: Layout, say: Callable[[str], None],
                         tarball: Path = DEBIAN_TARBALL) -> Path:
    tree = layout.source
    if not tarball.exists():
        raise SourceError(f"{tarball} is missing: install Debian's linux-source-6.12 "
                          "(make setup does it)")
    staging = tree.parent / "unpacking"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    say(f"source: unpacking {tarball} (about 15 s)")
    runner.run(["tar", "-xf", str(tarball), "-C", str(staging), "--strip-components=1"])
    version = makefile_version(staging)
    if version != KERNEL_VERSION:
        raise SourceError(f"{tarball} holds Linux {version}, the series is for "
                          f"{KERNEL_VERSION}: install linux-source-6.12={KERNEL_VERSION}-*")
    say("source: committing the git baseline (about 30 s)")
    _git(runner, staging, "init", "-q", "-b", "baseline")
    _git(runner, staging, "add", "-f", "-A")
    _git(runner, staging, "commit", "-q", "-m",
         f"Linux {version} from Debian's linux-source-6.12")
    if _drop_debian_ignore_all(staging):
        _git(runner, staging, "commit", "-q", "-a", "-m",
             "baseline: drop Debian's top-level ignore-all from .gitignore\n\n"
             "Debian's linux-source tarball ignores every top-level path, which\n"
             "hides new files from git add and git status. Upstream has no such rule.")
    _git(runner, staging, "tag", BASELINE_TAG)
    if tree.exists():
        shutil.rmtree(tree)
    staging.rename(tree)
    return tree


def prepare_source(runner: Runner, layout: Layout, say: Callable[[str], None],
                   kernel_src: Path | None = None) -> SourceTree:
    if kernel_src is not None:
        if not (kernel_src / "Makefile").exists() or not (kernel_src / "Kconfig").exists():
            raise SourceError(f"KERNEL_SRC={kernel_src} is not a kernel source tree "
                              "(no Makefile/Kconfig at its top)")
        version = makefile_version(kernel_src)
        say(f"source: using your tree {kernel_src} (Linux {version}) as it is")
        return SourceTree(path=kernel_src, version=version, baseline=None, user_tree=True)
    tree = layout.source
    if not has_baseline(runner, tree):
        unpack_debian_source(runner, layout, say)
    else:
        say(f"source: {tree} (tag {BASELINE_TAG})")
    return SourceTree(path=tree, version=makefile_version(tree), baseline=BASELINE_TAG,
                      user_tree=False)
