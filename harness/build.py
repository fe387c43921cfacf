"""Build: out of tree, through ccache, with progress and the full log kept.

CC is always `ccache gcc`: kbuild rebuilds every object whose command line
changed, so the harness must use the same compiler string on every run for
an unchanged tree to rebuild nothing.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .procs import CommandError, Runner

COMPILER = "ccache gcc"
_OBJECT_LINE = re.compile(r"^\s+(CC|AS|LD|AR|BTF|BTFIDS|GEN|HOSTCC|OBJCOPY|LDS)\s+(\S+)")
_ERROR_LINE = re.compile(r"(: error:|: fatal error:|^make(\[\d+\])?: \*\*\*|undefined reference|"
                         r"^ERROR: |Error \d+$)")


class BuildError(Exception):
    def __init__(self, message: str, first_errors: list[str], log_path: Path) -> None:
        self.first_errors = first_errors
        self.log_path = log_path
        super().__init__(message + "\n" + "\n".join(first_errors) + f"\nfull log: {log_path}")


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    build_dir: Path
    bzimage: Path
    vmlinux: Path
    release: str
    objects_built: int
    seconds: float
    log_path: Path
    headers: Path  # sanitised UAPI headers for user space (make headers_install)


def first_error_lines(lines: list[str], limit: int = 12) -> list[str]:
    """The first compiler errors with a line of context before each."""
    out: list[str] = []
    for i, line in enumerate(lines):
        if _ERROR_LINE.search(line):
            if i > 0 and lines[i - 1] not in out and not _ERROR_LINE.search(lines[i - 1]):
                out.append(lines[i - 1])
            out.append(line)
            if len(out) >= limit:
                break
    return out


class Progress:
    """Prints how many objects have been built, at most every `every` seconds."""

    def __init__(self, say: Callable[[str], None], every: float = 30.0) -> None:
        self.say = say
        self.every = every
        self.count = 0
        self.start = time.monotonic()
        self.last = self.start
        self.recent: list[str] = []

    def __call__(self, line: str) -> None:
        m = _OBJECT_LINE.match(line)
        if m:
            self.count += 1
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                self.say(f"build: {self.count} steps, {now - self.start:.0f}s, at {m.group(2)}")
        self.recent.append(line)
        if len(self.recent) > 2000:
            del self.recent[:1000]


def make_argv(source: Path, build_dir: Path, jobs: int, *targets: str) -> list[str]:
    return ["make", "-C", str(source), f"O={build_dir}", f"CC={COMPILER}", f"-j{jobs}",
            *targets]


def build_kernel(runner: Runner, *, source: Path, build_dir: Path, ccache_dir: Path,
                 log_path: Path, say: Callable[[str], None], jobs: int | None = None
                 ) -> BuildResult:
    jobs = jobs or os.cpu_count() or 2
    ccache_dir.mkdir(parents=True, exist_ok=True)
    env = {"CCACHE_DIR": str(ccache_dir), "CCACHE_MAXSIZE": "12G",
           # same stamps on every build so ccache hits across clones
           "KBUILD_BUILD_USER": "harness", "KBUILD_BUILD_HOST": "uring-iter-harness"}
    progress = Progress(say)
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    say(f"build: make -j{jobs} in {build_dir} (log: {log_path})")
    try:
        runner.run(make_argv(source, build_dir, jobs), env=env, log_path=log_path,
                   on_line=progress)
        headers = build_dir / "usr-headers"
        runner.run(make_argv(source, build_dir, jobs, "headers_install",
                             f"INSTALL_HDR_PATH={headers}"),
                   env=env, log_path=log_path, on_line=progress)
    except CommandError as exc:
        lines = progress.recent or exc.output.splitlines()
        raise BuildError("build: make failed; first errors:", first_error_lines(lines),
                         log_path) from exc
    seconds = time.monotonic() - start
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    say(f"build: done in {seconds:.0f}s, {progress.count} steps, release {release}")
    return BuildResult(build_dir=build_dir, bzimage=build_dir / "arch/x86/boot/bzImage",
                       vmlinux=build_dir / "vmlinux", release=release,
                       objects_built=progress.count, seconds=seconds, log_path=log_path,
                       headers=headers)
