"""Setup: the Debian packages the pipeline needs, installed idempotently.

Runs with the system python before the venv exists (standard library only).
A package that apt cannot install is an error that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from .errors import HarnessError
from .layout import DEBIAN_SOURCE_PACKAGE, DEBIAN_SOURCE_VERSION
from .procs import CommandError, Runner


@dataclass(frozen=True)
class Package:
    name: str
    why: str
    version: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}" if self.version else self.name


PACKAGES: tuple[Package, ...] = (
    Package(DEBIAN_SOURCE_PACKAGE, "the kernel source the series applies to",
            DEBIAN_SOURCE_VERSION),
    Package("build-essential", "gcc and make for the kernel"),
    Package("bc", "kernel build (timeconst)"),
    Package("bison", "kernel build (kconfig parser)"),
    Package("flex", "kernel build (kconfig lexer)"),
    Package("libelf-dev", "objtool and resolve_btfids"),
    Package("libssl-dev", "kernel build (certificates)"),
    Package("dwarves", "pahole: BTF for vmlinux"),
    Package("cpio", "kernel build (kheaders)"),
    Package("kmod", "kernel build"),
    Package("xz-utils", "unpacking the source tarball"),
    Package("zstd", "kernel build"),
    Package("git", "the source baseline and git am of the series"),
    Package("ccache", "incremental rebuilds across clones"),
    Package("clang", "compiling BPF programs"),
    Package("llvm", "llvm-strip for BPF skeletons"),
    Package("bpftool", "vmlinux.h and BPF skeletons"),
    Package("libbpf-dev", "loading BPF programs in guest tests"),
    Package("liburing-dev", "io_uring in guest tests"),
    Package("pkg-config", "finding libbpf and liburing"),
    Package("libcap-dev", "guest test helpers"),
    Package("qemu-system-x86", "booting the test kernel"),
    Package("busybox-static", "virtme-ng's guest init fallback"),
    Package("udev", "vng reads the guest's exit status through a virtio port "
                    "that needs udev; without it every run returns 255"),
    Package("python3-venv", "the harness venv"),
    Package("zlib1g-dev", "uringcr's image checksums (crc32)"),
    Package("fio", "a program this project did not write, for uringcr to dump "
            "(guest-tests/test_uringcr.py::test_dump_fio)"),
    Package("openssh-server", "the kept-alive guest (make guest): the guest runs the host's "
                              "/usr/sbin/sshd; the host's own sshd need not run"),
    Package("rsync", "virtme-ng"),
    Package("python3-ply", "checkpatch.pl's SPDX license check"),
    Package("python3-git", "checkpatch.pl's SPDX license check"),
)


def installed_packages(runner: Runner, names: list[str]) -> set[str]:
    """Names among `names` that dpkg reports as installed (any version)."""
    done = runner.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *names],
                      check=False)
    found = set()
    for line in done.output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "installed":
            found.add(parts[0])
    return found


def installed_version(runner: Runner, name: str) -> str | None:
    done = runner.run(["dpkg-query", "-W", "-f", "${Version}", name], check=False)
    return done.output.strip() or None if done.returncode == 0 else None


class SetupError(HarnessError):
    pass


def ensure_packages(runner: Runner, say: Callable[[str], None],
                    packages: tuple[Package, ...] = PACKAGES) -> list[str]:
    """Installs what is missing; returns the names it installed."""
    have = installed_packages(runner, [p.name for p in packages])
    missing = [p for p in packages if p.name not in have]
    for pkg in packages:
        if pkg.version and pkg.name in have:
            version = installed_version(runner, pkg.name)
            if version != pkg.version:
                missing.append(pkg)
    if not missing:
        say(f"setup: all {len(packages)} Debian packages present")
        return []
    say("setup: installing " + ", ".join(p.spec for p in missing))
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    try:
        runner.run([*sudo, "apt-get", "update", "-q"], env=env)
    except CommandError as exc:
        raise SetupError(f"apt-get update failed; check the network and "
                         f"/etc/apt/sources.list:\n{exc}") from exc
    done = runner.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                       *[p.spec for p in missing]], env=env, check=False)
    if done.returncode != 0:
        still = set(p.name for p in missing) - installed_packages(
            runner, [p.name for p in missing])
        names = still or {p.name for p in missing}
        lines = [l for l in done.output.splitlines() if l.startswith(("E:", "W:"))]
        raise SetupError(
            "apt-get could not install: " + ", ".join(sorted(names)) + "\n"
            + "\n".join(lines[-10:]) + "\n"
            + "Needed for: " + "; ".join(f"{p.name}: {p.why}" for p in missing
                                        if p.name in names)
            + "\nFix the package source (apt-cache policy <name>) and rerun.")
    return [p.name for p in missing]
