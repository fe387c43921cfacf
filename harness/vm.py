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

from . import protocol

GUEST_START = protocol.GUEST_START
_PANIC = re.compile(rb"Kernel panic - not syncing")
# A kernel report before the guest started its command: the boot is broken
# (under TCG a rare early-boot crash can loop for minutes).  Only consulted
# until the guest starts.
_BOOT_CRASH = re.compile(rb"(BUG: |Oops: |general protection fault)")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


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
    """How long the host waits, each a backstop behind the guest's own watchdog.

    Inside a test window (BEGIN .. END) the limit is the budget the BEGIN
    marker carries plus protocol.host_grace(scale); outside one (collection,
    between tests, an old guest without budgets) it is `idle` of silence."""

    boot: float       # from start to the guest's start marker
    idle: float       # silence allowed outside a test window
    total: float
    scale: float = 1.0
    after_panic: float = 20.0
    after_sysrq: float = 15.0   # time for the guest to print the sysrq dumps
    after_boot_crash: float = 20.0  # a crash before the guest started: give up soon


def send_sysrq(monitor: Path, keys: str, say: Callable[[str], None],
               sleep: Sleep = time.sleep) -> bool:
    """Presses alt-sysrq-<key> on the guest's keyboard through the QEMU monitor."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(monitor))
            for key in keys:
                sock.sendall(f"sendkey alt-sysrq-{key}\n".encode())
                sleep(0.5)   # the guest reads one key at a time
        return True
    except OSError as exc:
        say(f"vm: could not reach the QEMU monitor for sysrq: {exc}")
        return False


class _Watch:
    """What the console said so far, and how long the host may still wait."""

    def __init__(self, deadlines: Deadlines, start: float) -> None:
        self.dl = deadlines
        self.start = start
        self.started_at: float | None = None
        self.panic_at: float | None = None
        self.boot_crash_at: float | None = None
        self.last_progress = start
        self.window: tuple[str, float] | None = None   # (nodeid, its deadline in seconds)
        self.rounds = 0
        self.tests: list[str] = []

    def limit(self) -> tuple[float, str]:
        """The earliest deadline and what it is."""
        limits = [(self.start + self.dl.total, "total")]
        if self.started_at is None:
            limits.append((self.start + self.dl.boot, "boot"))
        elif self.window is not None:
            limits.append((self.last_progress + self.window[1], "window"))
        else:
            limits.append((self.last_progress + self.dl.idle, "idle"))
        if self.panic_at is not None:
            limits.append((self.panic_at + self.dl.after_panic, "panic"))
        if self.boot_crash_at is not None and self.started_at is None:
            limits.append((self.boot_crash_at + self.dl.after_boot_crash, "boot-crash"))
        return min(limits)

    def expired(self, now: float) -> tuple[VmStatus, str]:
        what = self.limit()[1]
        current = self.window[0] if self.window else (self.tests[-1] if self.tests else None)
        if self.panic_at is not None:
            return VmStatus.PANIC, "kernel panicked and the VM did not end"
        if self.started_at is None:
            if self.boot_crash_at is not None:
                return VmStatus.BOOT_FAILURE, (
                    f"the kernel crashed while booting ({now - self.boot_crash_at:.0f}s ago) "
                    "and the guest never started the command")
            return VmStatus.BOOT_FAILURE, (
                f"the guest did not start the command within {self.dl.boot:.0f}s")
        if what == "total":
            return VmStatus.HANG, (f"the whole run exceeded {self.dl.total:.0f}s"
                                   + (f" while running {current}" if current else ""))
        if what == "window" and self.window is not None:
            return VmStatus.HANG, (
                f"{self.window[0]} did not end within {self.window[1]:.0f}s (its budget plus "
                f"{protocol.host_grace(self.dl.scale):.0f}s of grace), and the guest's "
                "watchdog did not report it")
        return VmStatus.HANG, (f"no progress for {self.dl.idle:.0f}s"
                               + (f" after {current}" if current else ""))


def run_vm(spec: VmSpec, command: str, *, console_log: Path, deadlines: Deadlines,
           say: Callable[[str], None], spawn: ConsoleFactory = pexpect_console,
           clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> VmOutcome:
    import pexpect

    argv = vng_argv(spec, command)
    console_log.parent.mkdir(parents=True, exist_ok=True)
    with open(console_log, "ab") as f:
        f.write(f"### harness: {' '.join(argv)}\n".encode())
    start = clock()
    child = spawn(argv, console_log)
    patterns: list[object] = [GUEST_START.encode(), protocol.CONSOLE_BEGIN, protocol.CONSOLE_END,
                              protocol.CONSOLE_TIMEOUT, _PANIC, pexpect.EOF, pexpect.TIMEOUT,
                              _BOOT_CRASH, protocol.CONSOLE_ROUND, protocol.CONSOLE_REPRO_DONE]
    w = _Watch(deadlines, start)
    status: VmStatus | None = None
    detail = ""

    def group(n: int) -> str:
        return child.match.group(n).decode(errors="replace")  # type: ignore[attr-defined]

    while True:
        idx = child.expect(patterns, timeout=max(0.1, w.limit()[0] - clock()))
        now = clock()
        if idx == 0:
            w.started_at = w.last_progress = now
            say(f"vm: guest up after {now - start:.0f}s")
        elif idx == 1:
            current = group(1)
            budget = protocol.console_budget(child.match.group(2))  # type: ignore[attr-defined]
            w.window = (current, protocol.window_deadline(budget, deadlines.scale))
            w.tests.append(current)
            w.last_progress = now
            if w.rounds <= 1:    # later rounds repeat the same tests: one line per round
                say(f"vm: [{now - start:5.0f}s] {current}")
        elif idx == 2:
            w.last_progress = now
            w.window = None
            if group(2) != "passed":
                say(f"vm:          {group(1)}: {group(2)}")
        elif idx == 3:
            w.last_progress = now
            w.window = None
            detail = f"the guest watchdog gave up on {group(1)}"
            say(f"vm: {detail}")
        elif idx == 4:
            if w.panic_at is None:
                w.panic_at = now
                say("vm: kernel panic; waiting for the VM to end")
        elif idx == 5:
            break
        elif idx == 7:
            if w.started_at is None and w.boot_crash_at is None:
                w.boot_crash_at = now
                say("vm: the kernel reported a bug while booting")
        elif idx == 8:
            w.rounds = int(child.match.group(1))  # type: ignore[attr-defined]
            w.last_progress = now
            say(f"vm: [{now - start:5.0f}s] round {w.rounds}")
        elif idx == 9:
            w.last_progress = now
            say("vm: reproduce loop done: " + group(1))
        else:   # a deadline passed
            status, detail = w.expired(now)
            say(f"vm: {detail}")
            if spec.monitor is not None and w.panic_at is None and w.started_at is not None:
                say("vm: asking the guest for blocked tasks and held locks (sysrq w, d)")
                if send_sysrq(spec.monitor, "wd", say, sleep):
                    try:
                        child.expect([pexpect.EOF], timeout=deadlines.after_sysrq)
                    except pexpect.TIMEOUT:
                        pass
            child.terminate(force=True)
            break
    child.close(force=True)
    seconds = clock() - start
    code = child.exitstatus
    if status is None:
        if w.panic_at is not None:
            status, detail = VmStatus.PANIC, "kernel panic"
        elif w.started_at is None:
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
    last = w.window[0] if w.window else (w.tests[-1] if w.tests else None)
    return VmOutcome(status=status, exit_code=code, console_log=console_log, seconds=seconds,
                     boot_seconds=(w.started_at - start) if w.started_at else None,
                     detail=detail, last_test=last, tests_started=w.tests)


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
                     deadlines=Deadlines(boot=timeout, idle=timeout, total=timeout),
                     say=lambda s: None, spawn=spawn)
    if outcome.status is VmStatus.COMPLETED and outcome.exit_code == 0:
        return True, f"KVM boot took {outcome.seconds:.0f}s"
    return False, (f"a KVM boot did not complete within {timeout:.0f}s "
                   f"({outcome.status.value}: {outcome.detail}); see {console_log}")
