"""Where things live: the repository, and the cache outside it.

The prepared kernel source, the build directories and ccache sit under
~/.cache/uring-iter-harness (HARNESS_CACHE overrides it) so that a clean
clone of the repository reuses them and the repository stays small.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent

KERNEL_VERSION = "6.12.117"
DEBIAN_SOURCE_PACKAGE = "linux-source-6.12"
DEBIAN_SOURCE_VERSION = "6.12.117-1~deb12u1"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
BASELINE_TAG = f"baseline-{KERNEL_VERSION}"
SERIES_BRANCH = "series"


@dataclass(frozen=True, kw_only=True)
class Layout:
    repo: Path
    cache: Path

    @classmethod
    def default(cls) -> "Layout":
        cache = os.environ.get("HARNESS_CACHE") or str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "uring-iter-harness")
        return cls(repo=REPO_ROOT, cache=Path(cache))

    @property
    def source(self) -> Path:
        return self.cache / "src" / "linux"

    def build_dir(self, flavour: str) -> Path:
        return self.cache / "build" / flavour

    def guest_build_dir(self, flavour: str) -> Path:
        # per checkout too: make's dependency files name the sources by
        # absolute path, so two clones must not share one output directory
        checkout = hashlib.sha256(str(self.repo.resolve()).encode()).hexdigest()[:10]
        return self.cache / "guest-build" / f"{flavour}-{checkout}"

    @property
    def ccache(self) -> Path:
        return self.cache / "ccache"

    @property
    def cpu_lock(self) -> Path:
        return self.cache / "cpu.lock"

    @property
    def configs(self) -> Path:
        return self.repo / "configs"

    @property
    def patches(self) -> Path:
        return self.repo / "kernel-patches"

    @property
    def guest_tests(self) -> Path:
        return self.repo / "guest-tests"

    @property
    def results_root(self) -> Path:
        return Path(os.environ.get("HARNESS_RESULTS", self.repo / "results"))


@contextmanager
def cpu_lock(path: Path, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Serialise builds and boots: two of them on a 2-core machine help nobody."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fd:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if notify:
                notify(f"waiting for {path}: another build or VM is running")
            start = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if notify:
                notify(f"got {path} after {time.monotonic() - start:.0f}s")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
