"""Boot: the only module that knows virtme-ng's and QEMU's flags.

vng has no timeout and, in script mode, drops the kernel console unless -v
is given, so the harness owns both: it runs vng -v under pexpect, tees the
console to a file, watches for guest progress markers and panics, and on a
hang asks the guest for its blocked tasks and held locks (sysrq through the
QEMU monitor's virtual keyboard) before it kills QEMU.
"""

from __future__ import annotations

import enum
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

GUEST_START = "harness: GUEST START"
# Markers are matched up to the end of their line: pexpect may hand over a
# half-written line, and a node id cut at the buffer's end must not match.
_BEGIN = re.compile(r"harness: BEGIN (\S+)[^\n]*\n")
_END = re.compile(r"harness: END (\S+) outcome=(\S+)[^\n]*\n")
_TIMEOUT = re.compile(r"harness: TIMEOUT (\S+)[^\n]*\n")
_PANIC = re.compile(r"Kernel panic - not syncing")
# reproduce mode: one marker per round, one when the loop ends
_ROUND = re.compile(r"harness: ROUND (\d+)[^\n]*\n")
_REPRO_DONE = re.compile(r"harness: REPRO DONE ([^\n]*?)\r*\n")
# A kernel report before the guest started its command: the boot is broken
# (under TCG a rare early-boot crash can loop for minutes).  Only consulted
# until the guest starts.
_BOOT_CRASH = re.compile(r"(BUG: |Oops: |general protection fault)")


class Accel(str, enum.Enum):
    KVM = "kvm"
    TCG = "tcg"


# Under TCG every instruction is emulated: scale every deadline.
TIMEOUT_SCALE = {Accel.KVM: 1.0, Accel.TCG: 4.0}


@dataclass(frozen=True, kw_only=True)
class VmSpec:
    kernel: Path
    accel: Accel
    cpus: int = 2
    memory: str = "2G"
    append: tuple[str, ...] = ()
    rwdirs: tuple[Path, ...] = ()
    monitor: Path | None = None  # QEMU HMP socket, for sysrq on a hang
    vng: str = "vng"

    @property
    def scale(self) -> float:
        return TIMEOUT_SCALE[self.accel]


def vng_argv(spec: VmSpec, command: str | None) -> list[str]:
    argv = [spec.vng, "-v", "-r", str(spec.kernel), "--cpus", str(spec.cpus),
            "--memory", spec.memory, "--cwd", "/"]
    if spec.accel is Accel.TCG:
        argv.append("--disable-kvm")
    for opt in spec.append:
        argv += ["--append", opt]
    for d in spec.rwdirs:
        argv += ["--rwdir", str(d)]
    if spec.monitor is not None:
        # '=' form: argparse would take a value starting with '-' for an option
        argv.append(f"--qemu-opts=-monitor unix:{spec.monitor},server=on,wait=off")
    if command is not None:
        argv += ["--exec", command]
    return argv


class VmStatus(str, enum.Enum):
    COMPLETED = "completed"        # the guest command ran and reported its exit status
    PANIC = "panic"                # the kernel panicked; the VM ended
    HANG = "hang"                  # no progress within a deadline; VM killed
    BOOT_FAILURE = "boot-failure"  # the guest never started the command
    LOST = "lost"                  # VM ended without an exit status, no panic seen


@dataclass(kw_only=True)
class VmOutcome:
    status: VmStatus
    exit_code: int | None
    console_log: Path
    seconds: float
    boot_seconds: float | None
    detail: str = ""
    last_test: str | None = None
    tests_started: list[str] = field(default_factory=list)


class Console(Protocol):
    """What the watcher needs from a running VM (pexpect.spawn satisfies it)."""

    def expect(self, pattern: list[object], timeout: float) -> int: ...
    def terminate(self, force: bool = False) -> bool: ...
    def close(self, force: bool = True) -> None: ...
    def isalive(self) -> bool: ...

    exitstatus: int | None
    signalstatus: int | None
    match: object


ConsoleFactory = Callable[[list[str], Path], Console]


def pexpect_console(argv: list[str], log_path: Path) -> Console:
    import pexpect  # the venv has it; imported late so `make setup` works without it

    log = open(log_path, "ab")
    env = dict(os.environ)
    # vng runs virtme-run and friends from PATH: put its own bin directory first
    bindir = str(Path(argv[0]).parent)
    if bindir != ".":
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    child = pexpect.spawn(argv[0], argv[1:], timeout=None, maxread=65536,
                          searchwindowsize=4096, logfile=log,
                          dimensions=(50, 250), env=env)
    return child  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class Deadlines:
    boot: float       # from start to the guest's start marker
    per_test: float   # host-side backstop; the guest's own watchdog fires first
    total: float
    after_panic: float = 20.0
    after_sysrq: float = 15.0   # time for the guest to print the sysrq dumps
    after_boot_crash: float = 20.0  # a crash before the guest started: give up soon


def send_sysrq(monitor: Path, keys: str, say: Callable[[str], None]) -> bool:
    """Presses alt-sysrq-<key> on the guest's keyboard through the QEMU monitor."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(monitor))
            for key in keys:
                sock.sendall(f"sendkey alt-sysrq-{key}\n".encode())
                time.sleep(0.5)
        return True
    except OSError as exc:
        say(f"vm: could not reach the QEMU monitor for sysrq: {exc}")
        return False


def run_vm(spec: VmSpec, command: str, *, console_log: Path, deadlines: Deadlines,
           say: Callable[[str], None], spawn: ConsoleFactory = pexpect_console) -> VmOutcome:
    import pexpect

    argv = vng_argv(spec, command)
    console_log.parent.mkdir(parents=True, exist_ok=True)
    with open(console_log, "ab") as f:
        f.write(f"### harness: {' '.join(argv)}\n".encode())
    start = time.monotonic()
    child = spawn(argv, console_log)
    patterns: list[object] = [GUEST_START, _BEGIN, _END, _TIMEOUT, _PANIC,
                              pexpect.EOF, pexpect.TIMEOUT, _BOOT_CRASH, _ROUND, _REPRO_DONE]
    started_at: float | None = None
    panic_at: float | None = None
    boot_crash_at: float | None = None
    current: str | None = None
    rounds = 0
    tests: list[str] = []
    status: VmStatus | None = None
    detail = ""

    def remaining() -> float:
        now = time.monotonic()
        limits = [start + deadlines.total]
        if started_at is None:
            limits.append(start + deadlines.boot)
        else:
            limits.append(last_progress + deadlines.per_test)
        if panic_at is not None:
            limits.append(panic_at + deadlines.after_panic)
        if boot_crash_at is not None and started_at is None:
            limits.append(boot_crash_at + deadlines.after_boot_crash)
        return max(0.1, min(limits) - now)

    last_progress = start
    while True:
        idx = child.expect(patterns, timeout=remaining())
        now = time.monotonic()
        if idx == 0:
            started_at = now
            last_progress = now
            say(f"vm: guest up after {now - start:.0f}s")
        elif idx == 1:
            m = child.match
            current = m.group(1).decode(errors="replace")  # type: ignore[attr-defined]
            tests.append(current)
            last_progress = now
            if rounds <= 1:    # later rounds repeat the same tests: one line per round
                say(f"vm: [{now - start:5.0f}s] {current}")
        elif idx == 2:
            m = child.match
            name = m.group(1).decode(errors="replace")  # type: ignore[attr-defined]
            outcome = m.group(2).decode(errors="replace")  # type: ignore[attr-defined]
            last_progress = now
            if outcome != "passed":
                say(f"vm:          {name}: {outcome}")
        elif idx == 3:
            last_progress = now
            detail = f"the guest watchdog gave up on {current}"
            say(f"vm: {detail}")
        elif idx == 4:
            if panic_at is None:
                panic_at = now
                say("vm: kernel panic; waiting for the VM to end")
        elif idx == 5:
            break
        elif idx == 8:
            rounds = int(child.match.group(1))  # type: ignore[attr-defined]
            last_progress = now
            say(f"vm: [{now - start:5.0f}s] round {rounds}")
        elif idx == 9:
            last_progress = now
            say("vm: reproduce loop done: "
                + child.match.group(1).decode(errors="replace"))  # type: ignore[attr-defined]
        elif idx == 7:
            if started_at is None and boot_crash_at is None:
                boot_crash_at = now
                say("vm: the kernel reported a bug while booting")
        else:
            if panic_at is not None:
                status, detail = VmStatus.PANIC, "kernel panicked and the VM did not end"
            elif started_at is None:
                status = VmStatus.BOOT_FAILURE
                detail = (f"the kernel crashed while booting ({now - boot_crash_at:.0f}s "
                          "ago) and the guest never started the command"
                          if boot_crash_at is not None else
                          f"the guest did not start the command within {deadlines.boot:.0f}s")
            else:
                status = VmStatus.HANG
                detail = (f"no progress for {deadlines.per_test:.0f}s"
                          + (f" while running {current}" if current else ""))
            if now - start >= deadlines.total:
                detail = f"the whole run exceeded {deadlines.total:.0f}s" + (
                    f" while running {current}" if current else "")
            say(f"vm: {detail}")
            if spec.monitor is not None and panic_at is None and started_at is not None:
                say("vm: asking the guest for blocked tasks and held locks (sysrq w, d)")
                if send_sysrq(spec.monitor, "wd", say):
                    try:
                        child.expect([pexpect.EOF], timeout=deadlines.after_sysrq)
                    except pexpect.TIMEOUT:
                        pass
            child.terminate(force=True)
            break
    child.close(force=True)
    seconds = time.monotonic() - start
    code = child.exitstatus
    if status is None:
        if panic_at is not None:
            status, detail = VmStatus.PANIC, "kernel panic"
        elif started_at is None:
            status = VmStatus.BOOT_FAILURE
            detail = f"VM ended (vng status {code}) before the guest started the command"
        elif code == 255:
            status = VmStatus.LOST
            detail = ("VM ended without an exit status (vng 255) and no panic was seen: "
                      "QEMU died, or the guest's virtio return port is missing (install udev)")
        else:
            status = VmStatus.COMPLETED
    with open(console_log, "ab") as f:
        f.write(f"\n### harness: vm {status.value} after {seconds:.0f}s, "
                f"vng status {code}: {detail}\n".encode())
    return VmOutcome(status=status, exit_code=code, console_log=console_log, seconds=seconds,
                     boot_seconds=(started_at - start) if started_at else None, detail=detail,
                     last_test=current, tests_started=tests)


def kvm_usable_quick(dev: Path = Path("/dev/kvm")) -> str | None:
    """None if /dev/kvm can be opened; otherwise why not."""
    if not dev.exists():
        return f"{dev} does not exist"
    try:
        fd = os.open(dev, os.O_RDWR)
    except OSError as exc:
        return f"{dev} cannot be opened: {exc.strerror}"
    os.close(fd)
    return None


def probe_kvm(spec: VmSpec, *, console_log: Path, timeout: float,
              say: Callable[[str], None], spawn: ConsoleFactory = pexpect_console
              ) -> tuple[bool, str]:
    """Boots the kernel once with KVM and a trivial command.

    /dev/kvm can exist and still be useless (a nested software KVM on which
    QEMU aborts on -cpu host, or the guest hangs while decompressing), so only
    a real boot within a short deadline counts.
    """
    why_not = kvm_usable_quick()
    if why_not:
        return False, why_not
    kvm_spec = VmSpec(kernel=spec.kernel, accel=Accel.KVM, cpus=spec.cpus, memory=spec.memory,
                      vng=spec.vng)
    outcome = run_vm(kvm_spec, f"echo '<5>{GUEST_START}' > /dev/kmsg",
                     console_log=console_log,
                     deadlines=Deadlines(boot=timeout, per_test=timeout, total=timeout),
                     say=lambda s: None, spawn=spawn)
    if outcome.status is VmStatus.COMPLETED and outcome.exit_code == 0:
        return True, f"KVM boot took {outcome.seconds:.0f}s"
    return False, (f"a KVM boot did not complete within {timeout:.0f}s "
                   f"({outcome.status.value}: {outcome.detail}); see {console_log}")
