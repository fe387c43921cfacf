"""The kept guest running commands, its console windows and the keeper, against fakes
(and one real process in the place of vng)."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from harness import keeper, keptreal
from harness import kept_model as km
from harness.kept_model import (CommandHung, Endpoint, GuestDied, GuestUnresponsive, Seams,
                                SshError)
from harness.keptguest import KeptGuest


from harness.tests.keptfakes import QEMU, FakeChannel, FakeSession, World


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


# -- the keeper, with a real process in the place of vng ---------------------------------------

def test_pump_copies_and_sees_a_marker_split_across_reads(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.write(w, b"[ 1.0] boot\n[ 2.0] harness: KEPT GU")
    os.write(w, b"EST READY\n[ 3.0] more\n")
    os.close(w)
    ready: list[int] = []
    with open(tmp_path / "c.log", "wb") as sink:
        keeper.pump(r, sink, marker=km.READY_MARKER.encode(), on_ready=lambda: ready.append(1),
                timeout=60, on_timeout=lambda: None)
    os.close(r)
    assert ready == [1]
    assert (tmp_path / "c.log").read_bytes().endswith(b"READY\n[ 3.0] more\n")


def test_keeper_runs_vng_records_the_console_and_the_exit(tmp_path: Path) -> None:
    fake_vng = tmp_path / "vng"
    fake_vng.write_text("#!/bin/sh\necho \"[ 1.0] console\"\n"
                        f"echo \"[ 2.0] {km.READY_MARKER}\" >&2\nexit 3\n")
    fake_vng.chmod(0o755)
    config = tmp_path / "keeper.json"
    config.write_text(json.dumps({
        "argv": [str(fake_vng), "-v"], "console": str(tmp_path / "console.log"),
        "ended": str(tmp_path / "ended.json"), "lifetime": 600, "marker": km.READY_MARKER,
        "path_prefix": str(tmp_path)}))
    r, w = os.pipe()
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP), \
        signal.getsignal(signal.SIGINT)
    try:
        assert keeper.keeper_main(["keep", str(config), "--status-fd", str(w)]) == 0
    finally:
        for sig, handler in zip((signal.SIGTERM, signal.SIGHUP, signal.SIGINT), old):
            signal.signal(sig, handler)
    events = os.read(r, 4096).decode().split("\n")
    os.close(r)
    assert events[0].startswith("spawned ") and events[1:] == ["ready", ""]
    console = (tmp_path / "console.log").read_text()
    assert "[ 1.0] console" in console and km.READY_MARKER in console
    assert "kept guest ended, vng status 3" in console
    assert json.loads((tmp_path / "ended.json").read_text())["status"] == 3


def test_the_real_host_sees_processes_come_and_go() -> None:
    host = keptreal.RealHost()
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
    assert km.python_cache_dirs(pyenv, "/root/.pyenv/versions/3.11.7") == (
        Path("/root/.pyenv/versions/3.11.7"), Path("/w/.venv/lib/python3.11/site-packages"))
    debian = {"stdlib": "/usr/lib/python3.11", "purelib": "/w/.venv/lib/python3.11/site-packages",
              "platlib": "/w/.venv/lib/python3.11/site-packages"}
    assert km.python_cache_dirs(debian, "/usr") == (
        Path("/usr/lib/python3.11"), Path("/w/.venv/lib/python3.11/site-packages"))
