"""Fakes of the kept guest's world (host, keeper, SSH, QEMU monitor, clock), shared by
test_keptguest_start.py and test_keptguest_run.py: no VM, no network, no sleeping."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping


from harness import keptguest as kg
from harness.kept_model import Bounds, Endpoint, GuestSpec, Seams, SshError
from harness.keptguest import KeptGuest


KEEPER, VNG, QEMU = 100, 101, 102
BOUNDS = Bounds(boot=300, ssh=60, probe=20, probe_interval=30, after_sysrq=30, stop=60, kill=10)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@dataclass
class FakeKeeper:
    clock: FakeClock
    events: list[tuple[float, str]]   # (seconds after the previous one, line)
    pid: int = KEEPER
    closed: bool = False

    def event(self, timeout: float) -> str | None:
        if not self.events:
            self.clock.t += timeout
            return None
        delay, line = self.events[0]
        if delay > timeout:
            self.clock.t += timeout
            self.events[0] = (delay - timeout, line)
            return None
        self.clock.t += delay
        self.events.pop(0)
        return line

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHost:
    clock: FakeClock
    state_dir: Path
    keeper_events: list[tuple[float, str]] = field(default_factory=list)
    console: str = ""                   # what the "VM" prints into console.log at spawn
    procs: dict[int, int] = field(default_factory=dict)   # pid -> start ticks
    missing: set[str] = field(default_factory=set)
    busy_ports: set[int] = field(default_factory=set)
    boot: str = "boot-1"
    killed: list[tuple[int, str, bool]] = field(default_factory=list)
    spawned: list[list[str]] = field(default_factory=list)
    ignores_term: bool = False
    on_spawn: Callable[[], None] | None = None

    def spawn_keeper(self, argv: list[str], *, env: Mapping[str, str], log: Path) -> FakeKeeper:
        self.spawned.append(argv)
        self.procs.update({KEEPER: 1000, VNG: 1001, QEMU: 1002})
        (self.state_dir / "qemu.pid").write_text(f"{QEMU}\n")
        with open(self.state_dir / "console.log", "a") as f:
            f.write(self.console)
        if self.on_spawn:
            self.on_spawn()
        return FakeKeeper(self.clock, list(self.keeper_events))

    def start_ticks(self, pid: int) -> int | None:
        return self.procs.get(pid)

    def wait_gone(self, pid: int, ticks: int | None, timeout: float) -> bool:
        if pid in self.procs:
            self.clock.t += timeout
            return False
        return True

    def kill(self, pid: int, sig: int, *, group: bool = False) -> None:
        self.killed.append((pid, signal.Signals(sig).name, group))
        if self.ignores_term and sig == signal.SIGTERM:
            return
        # the keeper's SIGTERM handler takes the VM along
        for p in ((VNG, QEMU) if group and pid == VNG else
                  (KEEPER, VNG, QEMU) if pid == KEEPER else (pid,)):
            self.procs.pop(p, None)

    def port_free(self, port: int) -> bool:
        return port not in self.busy_ports

    def free_port(self) -> int:
        return 40022

    def boot_id(self) -> str:
        return self.boot

    def which(self, program: str) -> str | None:
        return None if program in self.missing else f"/usr/bin/{program}"


@dataclass
class FakeChannel:
    clock: FakeClock
    steps: list[tuple[float, bytes | None]]   # (delay, data); data b"" is EOF; None: silence
    status: int | None = 0
    closed: bool = False

    def recv(self, timeout: float) -> bytes | None:
        if not self.steps or self.steps[0][1] is None:
            self.clock.t += timeout
            return None
        delay, data = self.steps[0]
        if delay > timeout:
            self.clock.t += timeout
            self.steps[0] = (delay - timeout, data)
            return None
        self.clock.t += delay
        self.steps.pop(0)
        return data

    def exit_status(self, timeout: float) -> int | None:
        if self.steps and self.steps[0][1] is None:
            self.clock.t += timeout
            return None
        return self.status

    def close(self) -> None:
        self.closed = True


Responder = Callable[[str], FakeChannel]


@dataclass
class FakeSession:
    respond: Responder
    commands: list[str] = field(default_factory=list)
    closed: bool = False

    def exec(self, command: str, timeout: float) -> FakeChannel:
        self.commands.append(command)
        return self.respond(command)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeMonitor:
    console: Path
    presses: list[str]

    def sysrq(self, keys: str) -> str | None:
        self.presses.append(keys)
        with open(self.console, "a") as f:
            f.write("[ 99.0] sysrq: Show Blocked State\n[ 99.1] task:sh state:D\n"
                    "[ 99.2] sysrq: Show Locks Held\n")
        return None


class World:
    """A fake machine: host processes, an SSH server that answers per command."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.clock = FakeClock()
        self.state_dir = tmp_path / "state"
        self.state_dir.mkdir()
        self.host = FakeHost(self.clock, self.state_dir,
                             keeper_events=[(1, f"spawned {VNG}"), (60, "ready")])
        self.kernel = tmp_path / "bzImage"
        self.kernel.write_bytes(b"kernel")
        self.sshd = tmp_path / "sshd"
        self.sshd.write_text("")
        self.home = tmp_path / "home"
        keys = self.home / ".cache/virtme-ng/.ssh/etc/ssh"
        keys.mkdir(parents=True)
        (keys / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA root@host\n")
        self.connect_failures: list[str] = []
        self.connects: list[tuple[Endpoint, float]] = []
        self.handlers: dict[str, Callable[[], FakeChannel]] = {}
        self.sessions: list[FakeSession] = []
        self.presses: list[str] = []
        self.said: list[str] = []

    def chan(self, *steps: tuple[float, bytes | None], status: int | None = 0) -> FakeChannel:
        return FakeChannel(self.clock, list(steps), status)

    def respond(self, command: str) -> FakeChannel:
        for prefix, handler in self.handlers.items():
            if command.startswith(prefix):
                return handler()
        if command == "uname -r":
            return self.chan((0.5, b"6.12.117-uring\n"), (0, b""))
        if command == "true":
            return self.chan((0.1, b""))
        raise AssertionError(f"unexpected command {command}")

    def connect(self, endpoint: Endpoint, timeout: float) -> FakeSession:
        self.connects.append((endpoint, timeout))
        if self.connect_failures:
            raise SshError(self.connect_failures.pop(0))
        session = FakeSession(self.respond)
        self.sessions.append(session)
        return session

    @property
    def seams(self) -> Seams:
        return Seams(host=self.host, connect=self.connect,
                     monitor=lambda path: FakeMonitor(self.state_dir / "console.log",
                                                      self.presses),
                     clock=self.clock)

    def spec(self, **kw: object) -> GuestSpec:
        args: dict[str, object] = dict(kernel=self.kernel, vng="/venv/bin/vng",
                                       python="/venv/bin/python", append=("no5lvl",),
                                       rwdirs=(self.tmp / "results",), home=self.home,
                                       sshd=self.sshd)
        args.update(kw)
        return GuestSpec(**args)  # type: ignore[arg-type]

    def start(self, **kw: object) -> KeptGuest:
        return kg.start(self.spec(**kw), self.state_dir, self.said.append, bounds=BOUNDS,
                        seams=self.seams)

    def console(self, text: str) -> None:
        with open(self.state_dir / "console.log", "a") as f:
            f.write(text)
