"""KVM or TCG: one choice, shared by every boot (run, reproduce, shell).

/dev/kvm can exist and still be useless (a nested software KVM on which QEMU
aborts on -cpu host, or the guest hangs decompressing), so unless the user
forces one, a short probe boot decides, once per host boot (cached with the
host's boot id).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .vm import Accel, TIMEOUT_SCALE

PROBE_SECONDS = 45.0
# probe(bzimage, console_log, timeout) -> (KVM works, why)
Probe = Callable[[Path, Path, float], tuple[bool, str]]


def host_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    return path.read_text().strip()


@dataclass(frozen=True, kw_only=True)
class AccelChoice:
    accel: Accel
    why: str

    @property
    def scale(self) -> float:
        return TIMEOUT_SCALE[self.accel]


def choose_accel(requested: str, *, bzimage: Path, cache: Path, console_log: Path,
                 probe: Probe, boot_id: Callable[[], str],
                 lock: Callable[[], AbstractContextManager[object]],
                 say: Callable[[str], None]) -> AccelChoice:
    """requested: "kvm" or "tcg" (forced, no probe) or "auto"."""
    if requested in ("kvm", "tcg"):
        return AccelChoice(accel=Accel(requested), why="forced by ACCEL")
    if requested != "auto":
        raise ValueError(f"accel {requested!r}: use auto, kvm or tcg")
    cache_file = cache / "kvm-probe.json"
    this_boot = boot_id()
    if cache_file.exists():
        try:
            data = json.loads(cache_file.read_text())
            if data.get("boot_id") == this_boot:
                return AccelChoice(accel=Accel(data["accel"]),
                                   why=data["why"] + " (probed earlier this host boot)")
        except (ValueError, KeyError):
            pass    # a cut or old cache file: probe again
    say(f"accel: probing KVM with one short boot (at most {PROBE_SECONDS:.0f} s)")
    with lock():
        ok, why = probe(bzimage, console_log, PROBE_SECONDS)
    accel = Accel.KVM if ok else Accel.TCG
    if not ok:
        why = (f"TCG (software emulation, timeouts x{TIMEOUT_SCALE[Accel.TCG]:g}): {why}")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"boot_id": this_boot, "accel": accel.value, "why": why}))
    return AccelChoice(accel=accel, why=why)
