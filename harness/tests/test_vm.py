"""The VM watcher, driven by real processes that play a guest's console."""

import re
from pathlib import Path

import pexpect
import pytest

from harness.vm import (Accel, Deadlines, VmSpec, VmStatus, run_vm, vng_argv)

SPEC = VmSpec(kernel=Path("/k/bzImage"), accel=Accel.TCG)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeConsole:
    """A guest console from a script of (seconds later, bytes printed); the
    script's end is EOF with `exitstatus`, or a guest that goes silent for
    ever when `silent_after` is set.  expect() advances the fake clock instead
    of sleeping, so deadlines are tested without waiting for them."""

    def __init__(self, clock: FakeClock, script: list[tuple[float, bytes]], *,
                 exitstatus: int | None = 0, silent_after: bool = False,
                 log: Path | None = None) -> None:
        self.clock, self.script = clock, list(script)
        self.exitstatus, self.signalstatus = exitstatus, None
        self.silent_after = silent_after
        self.buffer = b""
        self.match: object = None
        self.log = log
        self.terminated = False

    def expect(self, pattern: list[object], timeout: float) -> int:
        while True:
            for i, p in enumerate(pattern):
                m = None
                if isinstance(p, bytes):
                    at = self.buffer.find(p)
                    m = re.search(re.escape(p), self.buffer) if at >= 0 else None
                elif isinstance(p, re.Pattern):
                    m = p.search(self.buffer)
                if m is not None:
                    self.match, self.buffer = m, self.buffer[m.end():]
                    return i
            if not self.script and not self.silent_after:
                if pexpect.EOF not in pattern:
                    raise pexpect.EOF("")
                return pattern.index(pexpect.EOF)
            if not self.script or self.script[0][0] > timeout:
                self.clock.now += timeout
                if self.script:
                    self.script[0] = (self.script[0][0] - timeout, self.script[0][1])
                if pexpect.TIMEOUT not in pattern:
                    raise pexpect.TIMEOUT("")
                return pattern.index(pexpect.TIMEOUT)
            delay, data = self.script.pop(0)
            self.clock.now += delay
            timeout -= delay
            self.buffer += data
            if self.log:
                with open(self.log, "ab") as f:
                    f.write(data)

    def terminate(self, force: bool = False) -> bool:
        self.terminated = True
        self.exitstatus = None
        return True

    def close(self, force: bool = True) -> None:
        pass

    def isalive(self) -> bool:
        return not self.terminated


def go_fake(tmp_path: Path, script: list[tuple[float, bytes]], *, exitstatus: int | None = 0,
            silent_after: bool = False, spec: VmSpec = SPEC, **dl: float):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    deadlines = Deadlines(boot=dl.get("boot", 60), idle=dl.get("idle", 60),
                          total=dl.get("total", 10000), after_panic=dl.get("after_panic", 20),
                          after_boot_crash=dl.get("after_boot_crash", 20),
                          after_sysrq=dl.get("after_sysrq", 15), scale=dl.get("scale", 1.0))
    consoles: list[FakeConsole] = []

    def spawn(argv: list[str], log_path: Path) -> FakeConsole:
        consoles.append(FakeConsole(clock, script, exitstatus=exitstatus,
                                    silent_after=silent_after, log=log_path))
        return consoles[0]
    start = clock.now
    out = run_vm(spec, "true", console_log=tmp_path / "c.log", deadlines=deadlines,
                 say=lambda s: None, spawn=spawn, clock=clock, sleep=clock.sleep)
    return out, clock.now - start


UP = (1.0, b"harness: GUEST START\r\n")


def fake_vm(script: str):  # type: ignore[no-untyped-def]
    """A real process playing the console (pexpect's own pty and line endings)."""
    def spawn(argv: list[str], log_path: Path):  # type: ignore[no-untyped-def]
        return pexpect.spawn("sh", ["-c", script], logfile=open(log_path, "ab"), timeout=None)
    return spawn


def go(tmp_path: Path, script: str):  # type: ignore[no-untyped-def]
    deadlines = Deadlines(boot=20, idle=20, total=30)
    return run_vm(SPEC, "true", console_log=tmp_path / "c.log", deadlines=deadlines,
                  say=lambda s: None, spawn=fake_vm(script))


def test_argv_forces_tcg_and_keeps_console() -> None:
    argv = vng_argv(VmSpec(kernel=Path("/k"), accel=Accel.TCG, append=("kasan_multi_shot",),
                           monitor=Path("/r/mon.sock")), "sh /r/x.sh")
    assert argv[:2] == ["vng", "-v"]
    assert "--disable-kvm" in argv
    assert argv[argv.index("--append") + 1] == "kasan_multi_shot"
    assert argv[-2:] == ["--exec", "sh /r/x.sh"]
    assert "--qemu-opts=-monitor unix:/r/mon.sock,server=on,wait=off" in argv
    assert "--disable-kvm" not in vng_argv(VmSpec(kernel=Path("/k"), accel=Accel.KVM), None)


def test_completed_run_reports_tests_and_exit_code(tmp_path: Path) -> None:
    # a serial console line through a pty ends in \r\r\n
    out = go(tmp_path, "echo 'harness: GUEST START'; printf 'harness: BEGIN t.py::a\\r\\r\\n';"
                       "echo 'harness: END t.py::a outcome=passed debug_locks=1'; exit 3")
    assert out.status is VmStatus.COMPLETED and out.exit_code == 3
    assert out.tests_started == ["t.py::a"]
    assert "harness: BEGIN t.py::a" in (tmp_path / "c.log").read_text()


def test_exit_255_without_panic_is_a_lost_vm(tmp_path: Path) -> None:
    out = go(tmp_path, "echo 'harness: GUEST START'; exit 255")
    assert out.status is VmStatus.LOST and "udev" in out.detail


def test_silent_guest_is_a_boot_failure(tmp_path: Path) -> None:
    out, took = go_fake(tmp_path, [], silent_after=True, boot=45)
    assert out.status is VmStatus.BOOT_FAILURE and "within 45s" in out.detail
    assert took == pytest.approx(45)


def test_a_window_waits_for_its_budget_plus_grace_then_names_the_test(tmp_path: Path) -> None:
    # budget=400 in BEGIN, scale 4: the host waits 400 + 30 x 4 = 520 s, not the idle 60
    out, took = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::stuck budget=400\r\n")],
                        silent_after=True, idle=60, scale=4.0)
    assert out.status is VmStatus.HANG
    assert "t.py::stuck did not end within 520s" in out.detail and out.last_test == "t.py::stuck"
    assert took == pytest.approx(2 + 520)
    assert "vm hang" in (tmp_path / "c.log").read_text()


def test_the_guest_watchdog_fires_before_the_host_deadline(tmp_path: Path) -> None:
    # the guest reports the timeout at its budget; the host then waits idle, not the window
    out, took = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::slow budget=100\r\n"),
                                   (100, b"harness: TIMEOUT t.py::slow after=100\r\n")],
                        exitstatus=124)
    assert out.status is VmStatus.COMPLETED and out.exit_code == 124
    assert took == pytest.approx(102)


def test_a_marker_without_budget_gets_the_default_budget(tmp_path: Path) -> None:
    out, took = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::old\r\n")],
                        silent_after=True, scale=2.0)
    assert out.status is VmStatus.HANG
    assert took == pytest.approx(2 + 30 * 2 + 30 * 2)


def test_silence_between_tests_is_bounded_by_idle(tmp_path: Path) -> None:
    out, took = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::a budget=10\r\n"),
                                   (1, b"harness: END t.py::a outcome=passed debug_locks=1\r\n")],
                        silent_after=True, idle=50)
    assert out.status is VmStatus.HANG and "no progress for 50s after t.py::a" in out.detail
    assert took == pytest.approx(3 + 50)


def test_total_deadline_wins(tmp_path: Path) -> None:
    steps = [(5, f"harness: BEGIN t.py::{i} budget=10\n".encode()) for i in range(100)]
    out, took = go_fake(tmp_path, [UP, *steps], total=200)
    assert out.status is VmStatus.HANG and "whole run exceeded 200s" in out.detail
    assert took == pytest.approx(200)


def test_panic_that_does_not_end_the_vm_is_cut_short(tmp_path: Path) -> None:
    out, took = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::p budget=100\n"),
                                   (1, b"Kernel panic - not syncing: Fatal exception\n")],
                        silent_after=True, after_panic=20)
    assert out.status is VmStatus.PANIC and took == pytest.approx(23)


def test_progress_resets_the_deadline(tmp_path: Path) -> None:
    steps = [(50, f"harness: BEGIN t.py::{i}\nharness: END t.py::{i} outcome=passed\n".encode())
             for i in range(4)]
    out, _ = go_fake(tmp_path, [UP, *steps], idle=60)
    assert out.status is VmStatus.COMPLETED and len(out.tests_started) == 4


def test_hang_asks_the_guest_for_sysrq_through_the_monitor(tmp_path: Path) -> None:
    import socket
    import threading
    sock_path = tmp_path / "mon.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                received.append(data)
    server_thread = threading.Thread(target=serve, daemon=True)
    server_thread.start()
    spec = VmSpec(kernel=Path("/k"), accel=Accel.TCG, monitor=sock_path)
    clock = FakeClock()
    out = run_vm(spec, "true", console_log=tmp_path / "c.log",
                 deadlines=Deadlines(boot=5, idle=1, total=20, after_sysrq=1),
                 say=lambda s: None, clock=clock, sleep=clock.sleep,
                 spawn=lambda argv, log: FakeConsole(clock, [UP], silent_after=True))
    server_thread.join(timeout=10)   # the monitor connection is closed: all is received
    server.close()
    assert out.status is VmStatus.HANG
    sent = b"".join(received).decode()
    assert "sendkey alt-sysrq-w" in sent and "sendkey alt-sysrq-d" in sent


def test_crash_while_booting_gives_up_early(tmp_path: Path) -> None:
    # real first line of a TCG early-boot crash (KASAN wild access in start_kernel)
    out, took = go_fake(tmp_path, [(1, b"[    1.130926] BUG: KASAN: wild-memory-access in "
                                       b"do_raw_spin_lock+0x122/0x270\r\n")],
                        silent_after=True, boot=200, after_boot_crash=20)
    assert out.status is VmStatus.BOOT_FAILURE and "crashed while booting" in out.detail
    assert took == pytest.approx(21)


def test_reports_after_the_guest_started_do_not_end_the_run(tmp_path: Path) -> None:
    out, _ = go_fake(tmp_path, [UP, (1, b"harness: BEGIN t.py::a\n"),
                                (1, b"[    9.1] BUG: KASAN: slab-out-of-bounds in f+0x1/0x2\n")])
    assert out.status is VmStatus.COMPLETED
