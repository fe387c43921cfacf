"""The boot steps of a kept guest (keptguest.start()): what must be there before
vng runs, a clean state directory, and the two bounded waits, for the keeper's
"ready" and for SSH to answer. Everything external goes through the seams of
kept_model.py, so the unit tests drive these without a VM."""

from __future__ import annotations

import re
from typing import Callable

from .kept_model import (
    _NO_SSHD, Bounds, Endpoint, GuestSpec, Host, Keeper, Seams, SshError, SshSession,
    StartCause, StartFailed, _Paths, _boot_failure_cause, _capture, console_tail)

# characters vng passes through its shell unquoted (--qemu-opts is joined into a string)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_+/.,=-]+$")


def preflight(spec: GuestSpec, paths: _Paths, host: Host) -> None:
    missing = []
    if not spec.sshd.exists():
        missing.append(f"{spec.sshd} (the guest runs the host's sshd: apt-get install "
                       "openssh-server; the host's own sshd need not run)")
    for program, why in (("busybox", "udhcpc gives the guest's NIC its address"),
                         ("ssh-keygen", "vng makes the SSH keys with it")):
        if host.which(program) is None:
            missing.append(f"{program} ({why})")
    if host.which(spec.vng) is None:
        missing.append(spec.vng)
    if not spec.kernel.is_file():
        missing.append(f"{spec.kernel} (build the kernel first)")
    if missing:
        raise StartFailed(StartCause.MISSING_PROGRAM, "missing: " + "; ".join(missing))
    for p in (paths.monitor, paths.pidfile, paths.script, *spec.rwdirs, *spec.cached_dirs):
        if not _SAFE_PATH.match(str(p)):
            raise StartFailed(StartCause.MISSING_PROGRAM,
                              f"{p}: vng passes this path through a shell; use one without "
                              "spaces or shell characters")


def reset(paths: _Paths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    for p in (paths.state, paths.monitor, paths.pidfile, paths.ended):
        p.unlink(missing_ok=True)
    if paths.console.exists():   # the last guest's console, for a look after the fact
        paths.console.replace(paths.root / "console.previous.log")
    paths.console.write_bytes(b"")
    paths.keeper_log.write_bytes(b"")


def await_ready(keeper: Keeper, paths: _Paths, seams: Seams, bounds: Bounds,
                 on_spawned: Callable[[int], None]) -> int:
    """Waits for the keeper's "ready"; returns vng's process group (on_spawned gets it
    as soon as it is known, so that a failure can kill it)."""
    clock = seams.clock
    deadline = clock.monotonic() + bounds.boot
    vm_pgid: int | None = None
    while True:
        remaining = deadline - clock.monotonic()
        event = keeper.event(max(0.0, remaining)) if remaining > 0 else None
        if event is None:
            raise StartFailed(StartCause.BOOT_FAILED,
                              f"the guest did not come up within {bounds.boot:.0f}s",
                              console_tail(paths.console))
        if event.startswith("spawned "):
            vm_pgid = int(event.split()[1])
            on_spawned(vm_pgid)
        elif event == "ready" and vm_pgid is not None:
            return vm_pgid
        elif event.startswith("exit ") or event == "":
            status = event.split()[1] if event else "unknown (the keeper ended)"
            tail = console_tail(paths.console)
            raise StartFailed(*_boot_failure_cause(tail, status), tail)



def await_ssh(endpoint: Endpoint, qemu_pid: int, paths: _Paths, seams: Seams,
               bounds: Bounds) -> tuple[SshSession, str]:
    """sshd starts before the guest command, but DHCP may still be running: retry, bounded."""
    clock = seams.clock
    deadline = clock.monotonic() + bounds.ssh
    delay, last = 0.25, "no attempt"
    while True:
        try:
            session = seams.connect(endpoint, min(bounds.probe, max(1.0, deadline - clock.monotonic())))
            try:
                code, out = _capture(session, "uname -r", bounds.probe, clock)
            except BaseException:
                session.close()
                raise
            if code == 0 and out.strip():
                return session, out.strip().splitlines()[-1]   # after any login noise
            session.close()
            last = f"`uname -r` answered {code}: {out.strip()[:200]}"
        except SshError as exc:
            last = str(exc)
        if seams.host.start_ticks(qemu_pid) is None:
            raise StartFailed(StartCause.BOOT_FAILED, "QEMU ended before SSH answered",
                              console_tail(paths.console))
        if clock.monotonic() + delay > deadline:
            tail = console_tail(paths.console)
            m = _NO_SSHD.search(tail)
            if m:
                raise StartFailed(StartCause.NO_SSHD, m.group(0), tail)
            raise StartFailed(StartCause.SSH_NOT_READY,
                              f"SSH on 127.0.0.1:{endpoint.port} did not answer within "
                              f"{bounds.ssh:.0f}s of the guest coming up: {last}", tail)
        clock.sleep(delay)
        delay = min(delay * 2, 4.0)
