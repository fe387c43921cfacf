"""Build: out of tree, through ccache, with progress and the full log kept.

CC is always `ccache gcc`: kbuild rebuilds every object whose command line
changed, so the harness must use the same compiler string on every run for
an unchanged tree to rebuild nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import SeriesError
from .procs import CommandError, Runner

COMPILER = "ccache gcc"
_OBJECT_LINE = re.compile(r"^\s+(CC|AS|LD|AR|BTF|BTFIDS|GEN|HOSTCC|OBJCOPY|LDS)\s+(\S+)")
_ERROR_LINE = re.compile(r"(: error:|: fatal error:|^make(\[\d+\])?: \*\*\*|undefined reference|"
                         r"^ERROR: |Error \d+$)")


class BuildError(SeriesError):
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


STEPS_FILE = ".harness-build-steps.json"   # in the build directory


def previous_steps(build_dir: Path) -> int | None:
    """How many steps the last full build of this directory took."""
    try:
        data = json.loads((build_dir / STEPS_FILE).read_text())
        steps = int(data["steps"])
        return steps if steps > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_steps(build_dir: Path, steps: int, seconds: float) -> None:
    """Kept only for a build that looks full (at least half the last full one's
    steps, or the first): an incremental build says nothing of the total."""
    before = previous_steps(build_dir)
    if before is None or steps >= before // 2:
        (build_dir / STEPS_FILE).write_text(json.dumps({"steps": steps,
                                                        "seconds": round(seconds)}))


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Build progress: step n/N, percent and ETA, N being the step count of the
    previous full build of the same directory (unknown the first time).

    On a terminal one line is redrawn in place at most every `redraw`
    seconds; elsewhere (CI, a log) a plain line every `every` seconds."""

    def __init__(self, say: Callable[[str], None], every: float = 30.0, *,
                 total: int | None = None, clock: Callable[[], float] = time.monotonic,
                 tty: Callable[[str], None] | None = None, redraw: float = 0.5) -> None:
        self.say = say
        self.every = redraw if tty else every
        self.total = total
        self.clock = clock
        self.tty = tty
        self.count = 0
        self.start = clock()
        self.last = self.start
        self.recent: list[str] = []
        self.drawn = False

    def text(self, where: str) -> str:
        elapsed = self.clock() - self.start
        if self.total:
            # an incremental build ends far below N; past N, N was too small
            pct = min(99, 100 * self.count // self.total)
            eta = (elapsed / self.count * max(0, self.total - self.count)) if self.count else 0
            return (f"build: step {self.count}/{self.total} ({pct}%), "
                    f"{_clock_text(elapsed)}, ETA {_clock_text(eta)}, at {where}")
        return (f"build: step {self.count} (no earlier full build to compare), "
                f"{_clock_text(elapsed)}, at {where}")

    def __call__(self, line: str) -> None:
        m = _OBJECT_LINE.match(line)
        if m:
            self.count += 1
            now = self.clock()
            if now - self.last >= self.every:
                self.last = now
                if self.tty:
                    self.tty("\r\x1b[K" + self.text(m.group(2))[:150])
                    self.drawn = True
                else:
                    self.say(self.text(m.group(2)))
        self.recent.append(line)
        if len(self.recent) > 2000:
            del self.recent[:1000]

    def done(self) -> None:
        if self.tty and self.drawn:
            self.tty("\r\x1b[K")


def terminal_writer() -> Callable[[str], None] | None:
    """Redrawing needs a terminal, and CI logs want plain lines."""
    if os.environ.get("CI") or not sys.stderr.isatty():
        return None

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()
    return write


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
    progress = Progress(say, total=previous_steps(build_dir), tty=terminal_writer())
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
        progress.done()
        lines = progress.recent or exc.output.splitlines()
        raise BuildError("build: make failed; first errors:", first_error_lines(lines),
                         log_path) from exc
    progress.done()
    seconds = time.monotonic() - start
    remember_steps(build_dir, progress.count, seconds)
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    say(f"build: done in {seconds:.0f}s, {progress.count} steps, release {release}")
    return BuildResult(build_dir=build_dir, bzimage=build_dir / "arch/x86/boot/bzImage",
                       vmlinux=build_dir / "vmlinux", release=release,
                       objects_built=progress.count, seconds=seconds, log_path=log_path,
                       headers=headers)
