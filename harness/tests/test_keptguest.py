"""The kept guest, with fakes for the host, SSH, the QEMU monitor and the clock: no VM,
no network, no sleeping."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest

from harness import keptguest as kg
from harness.keptguest import (Bounds, CommandHung, Endpoint, GuestDied, GuestSpec,
                               GuestUnresponsive, KeptGuest, Seams, SshError, StartCause,
                               StartFailed)

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


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


# -- the vng command line --------------------------------------------------------------------

def test_vng_argv_asks_for_ssh_over_tcp_a_monitor_and_a_pid_file() -> None:
    spec = GuestSpec(kernel=Path("/b/bzImage"), vng="/v/vng", append=("no5lvl", "log_buf_len=8M"),
                     rwdirs=(Path("/r"),))
    argv = kg.vng_argv(spec, port=40022, monitor=Path("/s/mon.sock"), pidfile=Path("/s/q.pid"),
                       script=Path("/s/guest.sh"))
    assert argv[:4] == ["/v/vng", "-v", "-r", "/b/bzImage"]
    assert "--ssh=40022" in argv and "--ssh-tcp" in argv and "--disable-kvm" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--append"] == ["no5lvl",
                                                                          "log_buf_len=8M"]
    assert argv[argv.index("--rwdir") + 1] == "/r"
    with_cache = kg.vng_argv(GuestSpec(kernel=Path("/k"), cached_dirs=(Path("/usr/lib/python3.11"),)),
                             port=1, monitor=Path("/m"), pidfile=Path("/p"), script=Path("/s"))
    assert with_cache[with_cache.index("--rodir") + 1] == "/usr/lib/python3.11"
    assert "--qemu-opts=-monitor unix:/s/mon.sock,server=on,wait=off -pidfile /s/q.pid" in argv
    assert argv[-2:] == ["--exec", "sh /s/guest.sh"]
    command = kg.guest_command(("/root/.bashrc",))
    assert command.startswith("{ [ ! -f /root/.bashrc ] || mount --bind /dev/null /root/.bashrc; }; ")
    cached = kg.guest_command(cached=("/usr/lib/python3.11",))
    assert "umount /usr/lib/python3.11 && mount -t 9p" in cached and "cache=loose" in cached
    assert "is not page-cached" in cached
    assert command.endswith(f"echo '<5>{kg.READY_MARKER}' > /dev/kmsg && read x < {kg.STOP_FIFO}")
    assert "--disable-kvm" not in kg.vng_argv(GuestSpec(kernel=Path("/k"), kvm=True), port=1,
                                               monitor=Path("/m"), pidfile=Path("/p"),
                                               script=Path("/s"))


# -- start -----------------------------------------------------------------------------------

def test_start_boots_waits_for_ssh_and_records_the_guest(world: World) -> None:
    world.connect_failures = ["Error reading SSH protocol banner"]   # DHCP still running
    events: list[str] = []

    @contextmanager
    def lock() -> Iterator[None]:
        events.append("lock")
        yield
        events.append("unlock")

    world.host.on_spawn = lambda: events.append("spawn")
    guest = kg.start(world.spec(), world.state_dir, world.said.append, bounds=BOUNDS,
                     seams=world.seams, lock=lock)
    assert events == ["lock", "spawn", "unlock"]
    assert guest.state.release == "6.12.117-uring"
    assert guest.state.port == 40022 and guest.state.qemu_pid == QEMU
    assert guest.state.vm_pgid == VNG and guest.state.keeper_pid == KEEPER
    assert guest.state.boot_seconds == pytest.approx(61 + 0.25 + 0.5)
    assert world.clock.slept == [0.25]
    endpoint = world.connects[-1][0]
    assert endpoint.key == world.home / ".cache/virtme-ng/.ssh/id_virtme"
    assert endpoint.host_keys[0].name == "ssh_host_ed25519_key.pub"
    assert world.host.spawned[0][:4] == ["/venv/bin/python", "-m", "harness.keptguest", "keep"]
    config = json.loads((world.state_dir / "keeper.json").read_text())
    assert "--ssh=40022" in config["argv"] and config["marker"] == kg.READY_MARKER
    script = world.state_dir / "guest.sh"
    assert config["argv"][-2:] == ["--exec", f"sh {script}"]
    assert kg.guest_command(("/root/.bashrc",)) in script.read_text()
    saved = KeptGuest.load(world.state_dir, seams=world.seams)
    assert saved is not None and saved.state == guest.state
    assert world.host.killed == []
    assert "ssh -p 40022" in world.said[-1]


def _nothing_left(world: World) -> None:
    assert not (world.state_dir / kg.STATE_FILE).exists()
    assert VNG not in world.host.procs and QEMU not in world.host.procs
    assert KEEPER not in world.host.procs


def test_start_names_a_busy_port_from_qemus_complaint(world: World) -> None:
    world.host.console = ("qemu-system-x86_64: -netdev user,id=ssh,hostfwd=tcp:127.0.0.1:40022"
                          "-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:40022-:22'\n")
    world.host.keeper_events = [(1, f"spawned {VNG}"), (1, "exit 1")]
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.PORT_BUSY
    assert "host forwarding rule" in exc.value.console_tail
    _nothing_left(world)


def test_a_boot_that_panics_says_so(world: World) -> None:
    world.host.console = ("[ 14.4] BUG: KASAN: slab-out-of-bounds in __unwind_start+0x75b/0x7a0\n"
                          "[ 14.5] Kernel panic - not syncing: Fatal exception in interrupt\n")
    world.host.keeper_events = [(1, f"spawned {VNG}"), (14, "exit 255")]
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.BOOT_FAILED
    assert "vng status 255" in str(exc.value) and "BUG: KASAN: slab-out-of" in str(exc.value)
    _nothing_left(world)


def test_start_refuses_a_port_in_use_before_booting(world: World) -> None:
    world.host.busy_ports = {2222}
    with pytest.raises(StartFailed) as exc:
        world.start(port=2222)
    assert exc.value.cause is StartCause.PORT_BUSY and world.host.spawned == []


def test_start_gives_up_on_a_boot_that_never_comes_up_and_kills_it(world: World) -> None:
    world.host.console = "[ 1.0] Linux version 6.12.117\n[ 2.0] BUG: kernel NULL pointer\n"
    world.host.keeper_events = [(1, f"spawned {VNG}")]
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.BOOT_FAILED
    assert "within 300s" in str(exc.value) and "NULL pointer" in exc.value.console_tail
    assert world.clock.t == pytest.approx(300)
    assert (VNG, "SIGTERM", True) in world.host.killed
    _nothing_left(world)


def test_start_reports_a_missing_sshd_before_booting(world: World) -> None:
    world.sshd.unlink()
    world.host.missing = {"busybox"}
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.MISSING_PROGRAM
    assert "openssh-server" in str(exc.value) and "busybox" in str(exc.value)
    assert world.host.spawned == []


def test_start_names_the_guest_sshd_failure_when_ssh_never_answers(world: World) -> None:
    world.host.console = "[ 5.0] virtme-init: ssh: /usr/sbin/sshd does not exist.\n"
    world.connect_failures = ["Connection reset by peer"] * 100
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.NO_SSHD
    assert "sshd does not exist" in str(exc.value)
    _nothing_left(world)


def test_start_says_ssh_did_not_answer_with_the_last_error(world: World) -> None:
    world.connect_failures = ["Error reading SSH protocol banner"] * 100
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.SSH_NOT_READY
    assert "protocol banner" in str(exc.value) and "within 60s" in str(exc.value)
    assert world.clock.t - 61 <= 60 + 1e-9      # bounded by Bounds.ssh
    _nothing_left(world)


def test_start_refuses_while_a_guest_runs(world: World) -> None:
    world.start()
    with pytest.raises(StartFailed) as exc:
        world.start()
    assert exc.value.cause is StartCause.ALREADY_RUNNING


def test_start_clears_the_leftovers_of_a_dead_guest(world: World) -> None:
    world.start()
    world.host.procs.clear()
    guest = world.start()
    assert guest.process_problem() is None


# -- load, liveness, staleness ---------------------------------------------------------------

def test_load_without_state_is_none(world: World) -> None:
    assert KeptGuest.load(world.state_dir, seams=world.seams) is None


def test_alive_needs_the_processes_and_an_answer(world: World) -> None:
    guest = world.start()
    assert guest.alive()
    world.handlers["true"] = lambda: world.chan((1000, b""))   # never answers
    guest = KeptGuest.load(world.state_dir, seams=world.seams, bounds=BOUNDS)
    assert guest is not None
    assert "within 20s" in (guest.problem() or "")
    world.host.procs.pop(QEMU)
    (world.state_dir / "ended.json").write_text('{"status": 255}')
    assert guest.process_problem() == f"QEMU (pid {QEMU}) is gone (vng exited with status 255)"


def test_pids_of_another_host_boot_or_process_do_not_count(world: World) -> None:
    guest = world.start()
    world.host.procs[QEMU] = 5555            # pid reused by another process
    assert "QEMU" in (guest.process_problem() or "")
    world.host.procs[QEMU] = 1002
    world.host.boot = "boot-2"
    assert guest.process_problem() == "the host rebooted since the guest started"


def test_a_rebuilt_kernel_makes_the_guest_stale(world: World) -> None:
    guest = world.start()
    assert guest.stale_reasons() == []
    assert guest.stale_reasons(kernel=world.kernel, append=("no5lvl",)) == []
    st = world.kernel.stat()
    os.utime(world.kernel, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    reasons = guest.stale_reasons(append=("no5lvl", "nokaslr"))
    assert any("was rebuilt at" in r for r in reasons)
    assert any("kernel arguments changed" in r for r in reasons)
    assert "not" in guest.stale_reasons(kernel=world.tmp / "other")[0]


def test_a_cached_directory_that_changed_makes_the_guest_stale(world: World) -> None:
    venv = world.tmp / "site-packages"
    venv.mkdir()
    guest = world.start(cached_dirs=(venv,))
    assert guest.stale_reasons() == []
    (venv / "newpkg").mkdir()
    st = venv.stat()
    os.utime(venv, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert guest.stale_reasons() == [f"{venv} changed since the guest booted (the guest caches it)"]


def test_tainting_persists(world: World) -> None:
    world.start().mark_tainted("lockdep turned itself off")
    again = KeptGuest.load(world.state_dir, seams=world.seams)
    assert again is not None and again.stale_reasons() == ["tainted: lockdep turned itself off"]


def test_writable_inside_an_rwdir_only(world: World) -> None:
    guest = world.start()
    assert guest.writable(world.tmp / "results" / "20261201-main")
    assert not guest.writable(world.tmp / "elsewhere")


# -- run ---------------------------------------------------------------------------------------

def test_run_streams_lines_and_returns_the_status(world: World) -> None:
    guest = world.start()
    start_offset = guest.console_offset()
    world.handlers["pytest"] = lambda: world.chan(
        (1, b"collected 2 it"), (1, b"ems\r\ntest_a PASSED\n"), (0, "caf\u00e9 ok".encode()[:4]),
        (1, "caf\u00e9 ok".encode()[4:]), (0, b""), status=3)
    lines: list[str] = []
    code = guest.run("pytest -q", on_line=lines.append, idle_timeout=100, total_timeout=1000)
    assert code == 3
    assert lines == ["collected 2 items", "test_a PASSED", "caf\u00e9 ok"]
    world.console("[ 9.0] harness: BEGIN test_a\n")
    assert guest.console_since(start_offset) == "[ 9.0] harness: BEGIN test_a\n"


def test_run_follows_the_console(world: World) -> None:
    guest = world.start()
    console: list[str] = []

    def later() -> FakeChannel:
        world.console("[ 8.0] harness: BEGIN t.py::a\n[ 8.5] harness: END t.py::a outcome=")
        return world.chan((2, b"x\n"), (2, b""))

    world.handlers["sh "] = later
    guest.run("sh /r/guest.sh", on_line=lambda s: None, idle_timeout=100, total_timeout=1000,
              on_console=console.append)
    assert console == ["[ 8.0] harness: BEGIN t.py::a"]


def test_console_output_counts_as_progress(world: World) -> None:
    guest = world.start()

    class Noisy(FakeChannel):
        def recv(self, timeout: float) -> bytes | None:
            world.console("[ 1.0] kernel says something\n")
            return super().recv(timeout)

    world.handlers["sh "] = lambda: Noisy(world.clock, [(150, b"")], 0)
    assert guest.run("sh /r/x.sh", on_line=lambda s: None, idle_timeout=100,
                     total_timeout=1000, on_console=lambda s: None) == 0


def test_a_dead_guest_is_detected_when_the_session_drops(world: World) -> None:
    guest = world.start()
    world.handlers["pytest"] = lambda: _DyingChannel(world, [(5, b"test_a "), (1, b"")])
    lines: list[str] = []
    with pytest.raises(GuestDied) as exc:
        guest.run("pytest", on_line=lines.append, idle_timeout=100, total_timeout=1000)
    assert f"QEMU (pid {QEMU}) is gone" in str(exc.value)
    assert lines == ["test_a "] and world.presses == []


class _DyingChannel(FakeChannel):
    """QEMU is killed while the command runs: the connection drops (EOF, no status)."""

    def __init__(self, world: World, steps: list[tuple[float, bytes | None]]) -> None:
        super().__init__(world.clock, steps, status=-1)
        self.world = world

    def recv(self, timeout: float) -> bytes | None:
        data = super().recv(timeout)
        if data == b"":
            self.world.host.procs.pop(QEMU, None)
        return data


def test_run_on_a_guest_that_is_gone_fails_at_once(world: World) -> None:
    guest = world.start()
    world.host.procs.pop(QEMU)
    with pytest.raises(GuestDied):
        guest.run("true", on_line=lambda s: None, idle_timeout=10, total_timeout=10)


def test_a_quiet_command_gets_sysrq_then_command_hung(world: World) -> None:
    guest = world.start()
    t0 = world.clock.t
    world.handlers["pytest"] = lambda: world.chan((1, b"test_abba "), (0, None))
    lines: list[str] = []
    with pytest.raises(CommandHung) as exc:
        guest.run("pytest", on_line=lines.append, idle_timeout=100, total_timeout=1000)
    assert exc.value.idle and "no progress for 100s" in str(exc.value)
    assert world.presses == ["wd"]
    assert "Show Locks Held" in exc.value.console_tail
    assert lines == ["test_abba "]                       # a partial line is not lost
    # probed every 30 s of quiet, then at 100 s: the guest answered, so it is the command
    assert world.sessions[-1].commands.count("true") == 4
    assert world.clock.t - t0 < 100 + 4 * 0.1 + 30 + 1   # bounded: idle + probes + sysrq wait
    again = KeptGuest.load(world.state_dir, seams=world.seams)
    assert again is not None and "a command hung" in again.stale_reasons()[0]


def test_a_guest_that_stops_answering_is_unresponsive(world: World) -> None:
    guest = world.start()
    t0 = world.clock.t
    world.handlers["pytest"] = lambda: world.chan((0, None))
    world.handlers["true"] = lambda: world.chan((0, None))   # the probe gets no answer either
    with pytest.raises(GuestUnresponsive) as exc:
        guest.run("pytest", on_line=lambda s: None, idle_timeout=1000, total_timeout=5000)
    assert "did not run `true`" in str(exc.value)
    assert world.presses == ["wd"]
    assert world.clock.t - t0 < 30 + 20 + 30 + 1       # one probe interval, one probe, sysrq


def test_a_command_past_its_deadline_is_hung_even_while_it_talks(world: World) -> None:
    guest = world.start()
    world.handlers["pytest"] = lambda: world.chan(*[(5, b"round\n")] * 1000)
    with pytest.raises(CommandHung) as exc:
        guest.run("pytest", on_line=lambda s: None, idle_timeout=100, total_timeout=300)
    assert not exc.value.idle and "300s deadline" in str(exc.value)
    assert world.presses == ["wd"]


def test_a_command_killed_by_a_signal_returns_255(world: World) -> None:
    guest = world.start()
    world.handlers["pytest"] = lambda: world.chan((1, b""), status=-1)
    lines: list[str] = []
    assert guest.run("pytest", on_line=lines.append, idle_timeout=10, total_timeout=10) == 255
    assert "without an exit status" in lines[-1]


# -- console windows --------------------------------------------------------------------------

def test_wait_console_polls_with_a_bound(world: World) -> None:
    guest = world.start()
    offset, t0 = guest.console_offset(), world.clock.t
    assert not guest.wait_console(offset, ("GUEST DONE",), timeout=5)
    assert 5 <= world.clock.t - t0 < 6
    world.console("harness: GUEST DONE rc=0\n")
    assert guest.wait_console(offset, ("GUEST DONE",), timeout=5)


# -- stop ------------------------------------------------------------------------------------

def test_stop_asks_the_guest_to_power_off(world: World) -> None:
    guest = world.start()

    def poweroff() -> FakeChannel:
        for pid in (VNG, QEMU, KEEPER):
            world.host.procs.pop(pid)
        return world.chan((0.5, b""), status=0)

    world.handlers["echo stop"] = poweroff
    said: list[str] = []
    guest.stop(said.append)
    assert world.host.killed == []
    assert not (world.state_dir / kg.STATE_FILE).exists()
    assert "stopped" in said[-1]
    assert not kg.stop(world.state_dir, said.append, seams=world.seams)


def test_stop_kills_a_guest_that_does_not_power_off(world: World) -> None:
    guest = world.start()
    world.handlers["echo stop"] = lambda: world.chan((0, None))
    world.host.ignores_term = True
    said: list[str] = []
    guest.stop(said.append)
    assert [k for k in world.host.killed if k[0] == VNG] == [(VNG, "SIGTERM", True),
                                                              (VNG, "SIGKILL", True)]
    assert any("killing it" in s for s in said)
    _nothing_left(world)


def test_stop_of_a_dead_guest_just_cleans_up(world: World) -> None:
    world.start()
    world.host.procs.clear()
    assert kg.stop(world.state_dir, lambda s: None, seams=world.seams, bounds=BOUNDS)
    assert world.host.killed == [] and not (world.state_dir / kg.STATE_FILE).exists()


# -- the keeper, with a real process in the place of vng ---------------------------------------

def test_pump_copies_and_sees_a_marker_split_across_reads(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.write(w, b"[ 1.0] boot\n[ 2.0] harness: KEPT GU")
    os.write(w, b"EST READY\n[ 3.0] more\n")
    os.close(w)
    ready: list[int] = []
    with open(tmp_path / "c.log", "wb") as sink:
        kg.pump(r, sink, marker=kg.READY_MARKER.encode(), on_ready=lambda: ready.append(1),
                timeout=60, on_timeout=lambda: None)
    os.close(r)
    assert ready == [1]
    assert (tmp_path / "c.log").read_bytes().endswith(b"READY\n[ 3.0] more\n")


def test_keeper_runs_vng_records_the_console_and_the_exit(tmp_path: Path) -> None:
    fake_vng = tmp_path / "vng"
    fake_vng.write_text("#!/bin/sh\necho \"[ 1.0] console\"\n"
                        f"echo \"[ 2.0] {kg.READY_MARKER}\" >&2\nexit 3\n")
    fake_vng.chmod(0o755)
    config = tmp_path / "keeper.json"
    config.write_text(json.dumps({
        "argv": [str(fake_vng), "-v"], "console": str(tmp_path / "console.log"),
        "ended": str(tmp_path / "ended.json"), "lifetime": 600, "marker": kg.READY_MARKER,
        "path_prefix": str(tmp_path)}))
    r, w = os.pipe()
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP), \
        signal.getsignal(signal.SIGINT)
    try:
        assert kg.keeper_main(["keep", str(config), "--status-fd", str(w)]) == 0
    finally:
        for sig, handler in zip((signal.SIGTERM, signal.SIGHUP, signal.SIGINT), old):
            signal.signal(sig, handler)
    events = os.read(r, 4096).decode().split("\n")
    os.close(r)
    assert events[0].startswith("spawned ") and events[1:] == ["ready", ""]
    console = (tmp_path / "console.log").read_text()
    assert "[ 1.0] console" in console and kg.READY_MARKER in console
    assert "kept guest ended, vng status 3" in console
    assert json.loads((tmp_path / "ended.json").read_text())["status"] == 3


def test_the_real_host_sees_processes_come_and_go() -> None:
    host = kg.RealHost()
    ticks = host.start_ticks(os.getpid())
    assert ticks is not None and ticks == host.start_ticks(os.getpid())
    assert host.start_ticks(2**22 + 12345) is None
    assert host.wait_gone(2**22 + 12345, None, 0)
    port = host.free_port()
    assert host.port_free(port)
    assert host.which(sys.executable) is not None


# -- a retest window ---------------------------------------------------------------------------

def test_run_window_holds_the_lock_and_returns_the_console_written_meanwhile(world: World) -> None:
    guest = world.start()
    world.console("[ 5.0] before the retest\n")
    held: list[str] = []

    @contextmanager
    def lock() -> Iterator[None]:
        held.append("lock")
        yield
        held.append("unlock")

    def script() -> FakeChannel:
        held.append("run")
        world.console("[ 9.0] harness: BEGIN t\n[ 9.5] harness: GUEST DONE rc=0\n")
        return world.chan((3, b"ok\n"), (0, b""), status=0)

    world.handlers["sh "] = script
    window = guest.run_window("sh /r/guest.sh", on_line=lambda s: None, idle_timeout=100,
                              total_timeout=100, done_marker="harness: GUEST DONE", lock=lock)
    assert held == ["lock", "run", "unlock"]
    assert window.exit_code == 0 and window.error is None and window.seconds == 3
    assert window.console == "[ 9.0] harness: BEGIN t\n[ 9.5] harness: GUEST DONE rc=0\n"


def test_run_window_keeps_the_console_of_a_hang(world: World) -> None:
    guest = world.start()
    world.handlers["sh "] = lambda: world.chan((0, None))
    window = guest.run_window("sh /r/guest.sh", on_line=lambda s: None, idle_timeout=50,
                              total_timeout=100)
    assert window.exit_code is None and isinstance(window.error, CommandHung)
    assert "Show Blocked State" in window.console


def test_a_new_guest_keeps_the_last_console_as_previous(world: World) -> None:
    world.start()
    world.console("[ 1.0] the first guest\n")
    world.host.procs.clear()
    world.start()
    assert "the first guest" in (world.state_dir / "console.previous.log").read_text()
    assert "the first guest" not in (world.state_dir / "console.log").read_text()


def test_a_guest_that_dies_while_the_process_lingers_is_reported_once(world: World) -> None:
    """The connection drops a moment before QEMU's process is gone: the probe's failed
    connect then finds QEMU gone."""
    guest = world.start()
    world.handlers["pytest"] = lambda: world.chan((1, b""), status=-1)
    world.sessions.clear()

    def connect_fails(endpoint: Endpoint, timeout: float) -> FakeSession:
        world.host.procs.pop(QEMU, None)
        raise SshError("Connection refused")

    guest._session = None
    guest.seams = Seams(host=world.host, connect=connect_fails, monitor=world.seams.monitor,
                        clock=world.clock)
    first = FakeSession(world.respond)
    guest._session = first
    with pytest.raises(GuestDied) as exc:
        guest.run("pytest", on_line=lambda s: None, idle_timeout=10, total_timeout=10)
    assert str(exc.value).count("is gone") == 1 and world.presses == []


def test_the_idle_limit_can_follow_the_running_tests_budget(world: World) -> None:
    guest = world.start()
    budget = {"now": 100.0}

    def on_console(line: str) -> None:
        if "BEGIN slow budget=" in line:
            budget["now"] = float(line.rsplit("=", 1)[1]) + 10

    def script() -> FakeChannel:
        world.console("[ 1.0] harness: BEGIN slow budget=360\n")
        return world.chan((200, b"done\n"), (0, b""))   # 200 s quiet: fine within 370

    world.handlers["sh "] = script
    assert guest.run("sh /r/g.sh", on_line=lambda s: None, idle_timeout=lambda: budget["now"],
                     total_timeout=1000, on_console=on_console) == 0
    assert budget["now"] == 370


def test_python_cache_dirs_cover_the_interpreter_and_the_venv() -> None:
    pyenv = {"stdlib": "/root/.pyenv/versions/3.11.7/lib/python3.11",
             "purelib": "/w/.venv/lib/python3.11/site-packages",
             "platlib": "/w/.venv/lib/python3.11/site-packages"}
    assert kg.python_cache_dirs(pyenv, "/root/.pyenv/versions/3.11.7") == (
        Path("/root/.pyenv/versions/3.11.7"), Path("/w/.venv/lib/python3.11/site-packages"))
    debian = {"stdlib": "/usr/lib/python3.11", "purelib": "/w/.venv/lib/python3.11/site-packages",
              "platlib": "/w/.venv/lib/python3.11/site-packages"}
    assert kg.python_cache_dirs(debian, "/usr") == (
        Path("/usr/lib/python3.11"), Path("/w/.venv/lib/python3.11/site-packages"))
