"""The kept guest's model: its errors, the seams to the outside world (Protocols:
Host, Keeper, SshConnector/SshSession/SshChannel, Monitor, Clock), what it boots
(GuestSpec), how long it waits (Bounds), what it records (GuestState, the files in
its state directory), the guest's command and vng's argv, and helpers that touch
the world only through the seams.  keptguest.py has start() (its boot steps in
kept_boot.py), KeptGuest and stop(); keptreal.py the real world behind the seams."""

from __future__ import annotations

import codecs
import enum
import json
import os
import re
import pwd
import shlex
import signal
import sys
import sysconfig
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol

from . import protocol
from .errors import HarnessError

READY_MARKER = protocol.KEPT_READY
STOP_FIFO = "/run/harness-kept-guest.stop"


def guest_command(masked: tuple[str, ...] = (), cached: tuple[str, ...] = ()) -> str:
    """The kept guest's --exec command: mask the login shell's rc files, remount the
    cached directories with the 9p page cache, create the stop fifo, say ready, wait on
    the fifo (then the guest powers off).

    sshd runs every command through the user's login shell, and Debian's bash sources
    ~/.bashrc for commands that come over SSH; on this machine root's runs `pyenv init`,
    which under TCG costs about 50 s per command.  Only inside the guest (its own mounts),
    /dev/null is bind-mounted over those files.

    The host filesystem reaches the guest over 9p without a cache: under TCG each file
    costs about 20 ms, and `import pytest` alone 30 s.  Each `cached` directory is an
    --rodir of its own (a 9p device), mounted again here with cache=loose, so only the
    first retest reads it from the host."""
    masks = "".join(f"{{ [ ! -f {shlex.quote(p)} ] || mount --bind /dev/null {shlex.quote(p)}; }}; "
                    for p in masked)
    # a directory left uncached only costs time: say so in the kernel log and go on
    remounts = "".join(
        f"{{ m=$(awk -v d={shlex.quote(d)} '$2 == d {{print $1, $4}}' /proc/mounts) && "
        f"[ -n \"$m\" ] && umount {shlex.quote(d)} && "
        f"mount -t 9p -o \"${{m#* }},cache=loose\" \"${{m%% *}}\" {shlex.quote(d)}; }} || "
        f"echo {shlex.quote(f'<4>harness: kept guest: {d} is not page-cached')} > /dev/kmsg; "
        for d in cached)
    return (f"{masks}{remounts}mkfifo {STOP_FIFO} && echo '<5>{READY_MARKER}' > /dev/kmsg"
            f" && read x < {STOP_FIFO}")

STATE_FILE = "guest.json"
STATE_VERSION = 1
# causes found in the console tail of a boot that did not come up
_PORT_BUSY = re.compile(r"[Cc]ould not set up host forwarding rule")
_NO_SSHD = re.compile(r"virtme-init: ssh: [^\n]*")
# the last words of a boot that crashed (the log scan of the console says more)
_KERNEL_REPORT = re.compile(r"Kernel panic - not syncing[^\n]*|BUG: [^\n]*|Oops: [^\n]*")

Say = Callable[[str], None]
# a limit in seconds, or a function asked for the current one at every wake-up
Limit = float | Callable[[], float]
LockFactory = Callable[[], AbstractContextManager[None]]


# -- errors ---------------------------------------------------------------------------------

class KeptGuestError(HarnessError):   # the machine's part: exit 2
    """Base class; console_tail is the end of the guest's console when it happened."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message)
        self.console_tail = console_tail


class StartCause(str, enum.Enum):
    ALREADY_RUNNING = "already-running"
    MISSING_PROGRAM = "missing-program"   # sshd, busybox, ssh-keygen, vng, the kernel
    NO_SSHD = "no-sshd"                   # the guest could not start sshd
    PORT_BUSY = "port-busy"
    BOOT_FAILED = "boot-failed"           # VM ended, or no ready marker in time
    SSH_NOT_READY = "ssh-not-ready"       # booted, but SSH never answered


class StartFailed(KeptGuestError):
    def __init__(self, cause: StartCause, message: str, console_tail: str = "") -> None:
        super().__init__(f"kept guest: {cause.value}: {message}", console_tail)
        self.cause = cause


class GuestDied(KeptGuestError):
    """QEMU (or the keeper recording its console) is gone."""


class GuestUnresponsive(KeptGuestError):
    """QEMU runs, but the guest does not run a trivial command over SSH."""


class CommandHung(KeptGuestError):
    """The command made no progress for idle_timeout, or ran past total_timeout."""

    def __init__(self, message: str, console_tail: str = "", *, idle: bool) -> None:
        super().__init__(message, console_tail)
        self.idle = idle


class SshError(Exception):
    """An SSH connection or request failed or did not answer in time."""


# -- seams ----------------------------------------------------------------------------------

class Clock(Protocol):
    def monotonic(self) -> float: ...
    def wall(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Keeper(Protocol):
    """The detached keeper, as its parent sees it while the guest boots."""

    pid: int

    def event(self, timeout: float) -> str | None:
        """The next status line; None if none came within timeout, "" once it closed."""
        ...

    def close(self) -> None: ...


class Host(Protocol):
    def spawn_keeper(self, argv: list[str], *, env: Mapping[str, str], log: Path) -> Keeper: ...
    def start_ticks(self, pid: int) -> int | None:
        """The process's start time (clock ticks after host boot); None if it is gone."""
        ...
    def wait_gone(self, pid: int, ticks: int | None, timeout: float) -> bool: ...
    def kill(self, pid: int, sig: int, *, group: bool = False) -> None: ...
    def port_free(self, port: int) -> bool: ...
    def free_port(self) -> int: ...
    def boot_id(self) -> str: ...
    def which(self, program: str) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    port: int
    user: str
    key: Path
    host_keys: tuple[Path, ...]
    host: str = "127.0.0.1"


class SshChannel(Protocol):
    def recv(self, timeout: float) -> bytes | None:
        """Output (stdout and stderr merged); None if nothing came in time, b"" at EOF."""
        ...
    def exit_status(self, timeout: float) -> int | None:
        """None if no status within timeout; -1 if the channel closed without one."""
        ...
    def close(self) -> None: ...


class SshSession(Protocol):
    def exec(self, command: str, timeout: float) -> SshChannel:
        """Starts command; raises SshError if the guest does not accept it within timeout."""
        ...
    def close(self) -> None: ...


SshConnector = Callable[[Endpoint, float], SshSession]


class Monitor(Protocol):
    def sysrq(self, keys: str) -> str | None:
        """Presses alt-sysrq-<key> for each key; None if done, else why not."""
        ...


MonitorFactory = Callable[[Path], Monitor]


@dataclass(frozen=True, kw_only=True)
class Seams:
    host: Host
    connect: SshConnector
    monitor: MonitorFactory
    clock: Clock


# -- configuration and state ----------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class GuestSpec:
    kernel: Path
    vng: str = "vng"
    python: str = sys.executable          # runs the keeper
    append: tuple[str, ...] = ()          # kernel command line (pipeline.KERNEL_ARGS)
    kvm: bool = False
    cpus: int = 2
    memory: str = "2G"
    rwdirs: tuple[Path, ...] = ()
    # read-only, page-cached in the guest (see guest_command): what changes rarely and
    # is read on every run: python_cache_dirs(); never guest-tests/ or the guest build,
    # whose edits must show at once
    cached_dirs: tuple[Path, ...] = ()
    port: int | None = None               # None: a free port
    user: str = "root"                    # guest tests need root
    lifetime: float = 12 * 3600.0         # the keeper ends the VM after this
    home: Path = field(default_factory=Path.home)  # vng keeps its keys in ~/.cache/virtme-ng/.ssh
    sshd: Path = Path("/usr/sbin/sshd")   # the guest runs the host's sshd

    @property
    def masked_rc(self) -> tuple[str, ...]:
        """The login user's shell rc files that SSH commands would source (see guest_command)."""
        try:
            home = Path(pwd.getpwnam(self.user).pw_dir)
        except KeyError:
            return ()
        return tuple(str(home / name) for name in (".bashrc",))

    @property
    def ssh_dir(self) -> Path:
        return self.home / ".cache" / "virtme-ng" / ".ssh"


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """Every wait, in seconds.  Defaults fit TCG on 2 cores; scaled(1/4) for KVM."""

    boot: float = 300.0          # keeper spawned -> the guest printed READY_MARKER
    ssh: float = 60.0            # READY_MARKER -> SSH runs `uname -r`
    probe: float = 20.0          # a trivial command must answer within this
    probe_interval: float = 30.0  # the command quiet this long -> probe the guest
    after_sysrq: float = 30.0    # for the sysrq w/d dumps to reach the console
    stop: float = 60.0           # asked to power off -> QEMU gone; then TERM
    kill: float = 10.0           # TERM -> gone; then KILL

    def scaled(self, factor: float) -> "Bounds":
        return Bounds(**{k: v * factor for k, v in asdict(self).items()})


@dataclass(frozen=True, kw_only=True)
class GuestState:
    """guest.json: what a later process needs to find, check and stop the guest."""

    keeper_pid: int
    keeper_ticks: int | None
    vm_pgid: int                  # vng's process group: vng, virtme-run, QEMU
    qemu_pid: int
    qemu_ticks: int | None
    port: int
    user: str
    key: str
    host_keys: tuple[str, ...]
    console: str
    monitor: str
    kernel: str
    kernel_mtime_ns: int
    kernel_size: int
    release: str
    append: tuple[str, ...]
    rwdirs: tuple[str, ...]
    cached: tuple[tuple[str, int], ...]   # cached dirs and their mtime_ns at boot
    started: float                # wall clock, seconds since the epoch
    boot_seconds: float           # keeper spawned -> SSH answered
    boot_id: str                  # the host's boot: pids mean nothing after a reboot
    tainted: str | None = None    # why the guest should not be reused
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "GuestState":
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')}, expected {STATE_VERSION}")
        for key in ("host_keys", "append", "rwdirs"):
            data[key] = tuple(data[key])
        data["cached"] = tuple((str(d), int(m)) for d, m in data.get("cached", ()))
        return cls(**data)


class _Paths:
    """The files in a state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / STATE_FILE
        self.console = root / "console.log"       # the whole console of the guest's life
        self.monitor = root / "monitor.sock"      # QEMU's HMP, for sysrq
        self.pidfile = root / "qemu.pid"
        self.keeper_config = root / "keeper.json"
        self.keeper_log = root / "keeper.log"     # the keeper's own errors
        self.ended = root / "ended.json"          # vng's exit status, by the keeper
        self.script = root / "guest.sh"           # what the guest runs (guest_command)


def python_cache_dirs(paths: Mapping[str, str] | None = None,
                      base_prefix: str = sys.base_prefix) -> tuple[Path, ...]:
    """What the guest's Python reads on every start, for GuestSpec.cached_dirs: the
    interpreter's installation (its whole prefix when it has one of its own, like pyenv's:
    binary, libpython, stdlib; else just the stdlib) and the venv's site-packages.
    Defaults: the running interpreter, i.e. the venv the guest runs."""
    paths = paths if paths is not None else sysconfig.get_paths()
    own_prefix = Path(base_prefix) not in (Path("/"), Path("/usr"), Path("/usr/local"))
    found = [Path(base_prefix) if own_prefix else Path(paths["stdlib"]),
             Path(paths["purelib"]), Path(paths["platlib"])]
    dirs: list[Path] = []
    for d in found:
        if not any(d == k or k in d.parents for k in dirs):
            dirs = [k for k in dirs if d not in k.parents] + [d]
    return tuple(dirs)


def default_state_dir(cache: Path, checkout: str, flavour: str = "default") -> Path:
    """One kept guest per checkout and flavour, e.g. layout.cache / kept-guest / default-<hash>
    (checkout: the same hash as Layout.guest_build_dir's)."""
    return cache / "kept-guest" / f"{flavour}-{checkout}"


def vng_argv(spec: GuestSpec, *, port: int, monitor: Path, pidfile: Path,
             script: Path) -> list[str]:
    """script: guest_command()'s text in a file (the kernel command line, which carries
    --exec, is cut at 2048 bytes: a long command loses init= and boots the host's systemd)."""
    argv = [spec.vng, "-v", "-r", str(spec.kernel), "--cpus", str(spec.cpus),
            "--memory", spec.memory, "--cwd", "/", f"--ssh={port}", "--ssh-tcp"]
    if not spec.kvm:
        argv.append("--disable-kvm")
    for opt in spec.append:
        argv += ["--append", opt]
    for d in spec.rwdirs:
        argv += ["--rwdir", str(d)]
    # vng joins --qemu-opts into a shell string unquoted: '=' form, safe paths only
    argv.append(f"--qemu-opts=-monitor unix:{monitor},server=on,wait=off -pidfile {pidfile}")
    for d in spec.cached_dirs:
        argv += ["--rodir", str(d)]
    argv += ["--exec", f"sh {script}"]
    return argv


def keeper_argv(spec: GuestSpec, config: Path) -> list[str]:
    return [spec.python, "-m", "harness.keeper", "keep", str(config)]


@dataclass(frozen=True, kw_only=True)
class Window:
    """One retest: the command's status and the console it produced."""

    exit_code: int | None         # None: see error
    console: str                  # for logscan.scan_console, and <suite>.console.log
    seconds: float
    error: KeptGuestError | None = None   # GuestDied, GuestUnresponsive or CommandHung


# -- helpers of start() and KeptGuest -------------------------------------------------------

def _boot_failure_cause(tail: str, status: str) -> tuple[StartCause, str]:
    if _PORT_BUSY.search(tail):
        return StartCause.PORT_BUSY, "QEMU could not forward the SSH port (in use?)"
    m = _NO_SSHD.search(tail)
    if m:
        return StartCause.NO_SSHD, m.group(0)
    report = _KERNEL_REPORT.search(tail)
    return StartCause.BOOT_FAILED, (f"the VM ended while booting (vng status {status})"
                                    + (f"; the kernel said: {report.group(0).strip()}"
                                       if report else ""))


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise StartFailed(StartCause.BOOT_FAILED, f"QEMU wrote no pid file {path}: {exc}") from exc


def _capture(session: SshSession, command: str, timeout: float, clock: Clock) -> tuple[int, str]:
    """A short command's status and output, within timeout (else SshError)."""
    deadline = clock.monotonic() + timeout
    chan = session.exec(command, timeout)
    out = b""
    try:
        while True:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise SshError(f"`{command}` did not finish within {timeout:.0f}s")
            data = chan.recv(remaining)
            if data == b"":
                break
            if data is not None:
                out += data
        status = chan.exit_status(max(0.0, deadline - clock.monotonic()))
    finally:
        chan.close()
    if status is None:
        raise SshError(f"`{command}` gave no exit status within {timeout:.0f}s")
    return status, out.decode(errors="replace")


def _kill_vm(host: Host, keeper_pid: int | None, vm_pgid: int | None, bounds: Bounds,
             qemu_pid: int | None = None) -> None:
    """TERM, then KILL, vng's process group (QEMU is in it), then the keeper."""
    for pid, group, waits in ((vm_pgid, True, (vm_pgid, qemu_pid)),
                              (keeper_pid, False, (keeper_pid,))):
        if pid is None or host.start_ticks(pid) is None:
            continue
        host.kill(pid, signal.SIGTERM, group=group)
        if not all(host.wait_gone(p, None, bounds.kill) for p in waits if p is not None):
            host.kill(pid, signal.SIGKILL, group=group)
            for p in waits:
                if p is not None:
                    host.wait_gone(p, None, bounds.kill)


def _write_state(path: Path, state: GuestState) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def console_tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").replace("\r", "").splitlines()[-lines:])


class _Console(Protocol):
    """The console a command's _Progress follows (KeptGuest's)."""

    def console_offset(self) -> int: ...
    def console_since(self, offset: int) -> str: ...


class _Progress:
    """Splits a command's output into lines and follows the console, for run()."""

    def __init__(self, guest: _Console, clock: Clock, on_line: Callable[[str], None],
                 on_console: Callable[[str], None] | None, console_counts: bool) -> None:
        self.guest, self.clock = guest, clock
        self.on_line, self.on_console, self.console_counts = on_line, on_console, console_counts
        self.last = clock.monotonic()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._console_at = guest.console_offset()
        self._console_partial = ""

    def output(self, data: bytes | None) -> None:
        if not data:
            return
        self.last = self.clock.monotonic()
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))

    def _line(self, line: str) -> None:
        self.on_line(line)

    def console(self) -> None:
        size = self.guest.console_offset()
        if size <= self._console_at:
            return
        if self.console_counts:
            self.last = self.clock.monotonic()
        if self.on_console is not None:
            text = self._console_partial + self.guest.console_since(self._console_at)
            *lines, self._console_partial = text.split("\n")
            for line in lines:
                self.on_console(line.rstrip("\r"))
        self._console_at = size

    def flush(self) -> None:
        rest = self._partial + self._decoder.decode(b"", final=True)
        if rest:
            self._line(rest.rstrip("\r"))
        self._partial = ""
        self.console()


def _brief(command: str) -> str:
    return command if len(command) <= 60 else command[:57] + "..."


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
