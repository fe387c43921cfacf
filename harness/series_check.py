"""Series check: every patch is checkpatch clean, signed off, and every
prefix of the series builds on its own (bisectable).

Each prefix is applied on the `series` branch and built incrementally in
the normal build directory, so the last step leaves the tree and the build
exactly as a normal run wants them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .build import BuildError, build_kernel
from .kconfig import configure, fragment_files
from .layout import Layout, cpu_lock
from .patches import apply_series, read_series
from .procs import Runner
from .source import SourceTree

_TOTAL = re.compile(r"total: (\d+) errors, (\d+) warnings(?:, (\d+) checks)?")
_TARGET = re.compile(r"^\+\+\+ b/(\S+)$", re.M)
# the tools/ copies of UAPI headers, which the kernel keeps identical to the originals
_TOOLS_UAPI = "tools/include/uapi/"


@dataclass(kw_only=True)
class PatchCheck:
    patch: str
    checkpatch: str          # "clean" or the totals line
    signed_off: bool
    builds: bool | None = None
    build_seconds: float = 0.0
    build_error: str = ""

    @property
    def ok(self) -> bool:
        return (self.checkpatch.split(" (", 1)[0] == "clean" and self.signed_off
                and self.builds is not False)


def checkpatch(runner: Runner, tree: Path, patch: Path, scratch: Path) -> str:
    # cwd outside the tree: checkpatch drops a .checkpatch-camelcase.* cache
    # file into its cwd, which would make the kernel tree dirty
    done = runner.run(["perl", str(tree / "scripts/checkpatch.pl"), "--strict",
                       "--show-types", f"--root={tree}", str(patch)],
                      cwd=scratch, check=False)
    found = _TOTAL.search(done.output)
    if done.returncode == 0 and (found is None or set(found.groups(default="0")) == {"0"}):
        return "clean"
    problems = [l for l in done.output.splitlines() if l.startswith(("ERROR:", "WARNING:", "CHECK:"))]
    return (found.group(0) if found else f"checkpatch exited {done.returncode}") + (
        ": " + " | ".join(problems[:5]) if problems else "")


def verbatim_uapi_sync(patch_text: str, tree: Path) -> str | None:
    """"verbatim copy of ..." when the patch only syncs tools/include/uapi/ copies
    of UAPI headers and each is, in @tree, byte for byte the kernel's header.
    Such a patch is the original's style, which the sync must not change:
    checkpatch on it reports the original (BIT() is not for UAPI headers).
    None for any other patch, or a copy that differs."""
    targets = sorted(set(_TARGET.findall(patch_text)))
    if not targets or not all(t.startswith(_TOOLS_UAPI) for t in targets):
        return None
    for t in targets:
        copy, original = tree / t, tree / t.removeprefix("tools/")
        if not copy.is_file() or not original.is_file() or copy.read_bytes() != original.read_bytes():
            return None
    return "verbatim copy of " + ", ".join(t.removeprefix("tools/") for t in targets)


def check_series(runner: Runner, layout: Layout, source: SourceTree, results: Path,
                 say: Callable[[str], None], build: bool = True,
                 fragments: tuple[str, ...] = ("base", "debug", "lean"),
                 configkernel: str = "virtme-configkernel") -> list[PatchCheck]:
    patches = read_series(layout.patches)
    checks = []
    for p in patches:
        text = p.read_text(errors="replace")
        synced = verbatim_uapi_sync(text, source.path)
        verdict = f"clean ({synced}: not checked)" if synced else checkpatch(runner, source.path, p,
                                                                             results)
        checks.append(PatchCheck(patch=p.name, checkpatch=verdict,
                                 signed_off=bool(re.search(r"^Signed-off-by: .+ <.+@.+>$", text, re.M))))
        say(f"series-check: {p.name}: checkpatch {checks[-1].checkpatch}, "
            f"signed-off {'yes' if checks[-1].signed_off else 'NO'}")
    if not build:
        return checks
    build_dir = layout.build_dir("default")
    with cpu_lock(layout.cpu_lock, say):
        # the harness's config, as a normal run would build it
        configure(runner, source=source.path, build_dir=build_dir,
                  fragments=fragment_files(layout.configs, list(fragments)),
                  configkernel=configkernel, say=say)
        for k, check in enumerate(checks, 1):
            apply_series(runner, source, layout.patches, say, first=k)
            start = time.monotonic()
            try:
                build_kernel(runner, source=source.path, build_dir=build_dir,
                             ccache_dir=layout.ccache, log_path=results / f"build-{k:02d}.log",
                             say=say)
                check.builds = True
            except BuildError as exc:
                check.builds = False
                check.build_error = "\n".join(exc.first_errors)
            check.build_seconds = time.monotonic() - start
            say(f"series-check: prefix 1..{k} ({check.patch}) "
                f"{'builds' if check.builds else 'DOES NOT BUILD'} in {check.build_seconds:.0f}s")
        if len(checks) == 0 or checks[-1].builds is not True:
            apply_series(runner, source, layout.patches, say)
    return checks
