"""The VM watcher, driven by real processes that play a guest's console."""

from pathlib import Path

import pexpect
import pytest

from harness.vm import (Accel, Deadlines, VmSpec, VmStatus, run_vm, vng_argv)

SPEC = VmSpec(kernel=Path("/k/bzImage"), accel=Accel.TCG)


def fake_vm(script: str):  # type: ignore[no-untyped-def]
    def spawn(argv: list[str], log_path: Path):  # type: ignore[no-untyped-def]
        return pexpect.spawn("sh", ["-c", script], logfile=open(log_path, "ab"), timeout=None)
    return spawn


def go(tmp_path: Path, script: str, **dl: float):  # type: ignore[no-untyped-def]
    deadlines = Deadlines(boot=dl.get("boot", 5), per_test=dl.get("per_test", 5),
                          total=dl.get("total", 20), after_panic=dl.get("after_panic", 2),
                          after_boot_crash=1)
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
    out = go(tmp_path, "sleep 30", boot=1)
    assert out.status is VmStatus.BOOT_FAILURE
    assert out.seconds < 10


def test_stuck_test_is_a_hang_and_names_the_test(tmp_path: Path) -> None:
    out = go(tmp_path, "echo 'harness: GUEST START'; echo 'harness: BEGIN t.py::stuck'; sleep 30",
             per_test=1)
    assert out.status is VmStatus.HANG
    assert "t.py::stuck" in out.detail and out.last_test == "t.py::stuck"
    assert "vm hang" in (tmp_path / "c.log").read_text()


def test_panic_that_does_not_end_the_vm_is_cut_short(tmp_path: Path) -> None:
    out = go(tmp_path, "echo 'harness: GUEST START'; echo 'harness: BEGIN t.py::p';"
                       "echo 'Kernel panic - not syncing: Fatal exception'; sleep 30",
             after_panic=1, per_test=20)
    assert out.status is VmStatus.PANIC and out.seconds < 10


def test_progress_resets_the_per_test_deadline(tmp_path: Path) -> None:
    steps = "; ".join(f"echo 'harness: BEGIN t.py::{i}'; sleep 0.6" for i in range(4))
    out = go(tmp_path, f"echo 'harness: GUEST START'; {steps}; exit 0", per_test=1.5)
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
    threading.Thread(target=serve, daemon=True).start()
    spec = VmSpec(kernel=Path("/k"), accel=Accel.TCG, monitor=sock_path)
    out = run_vm(spec, "true", console_log=tmp_path / "c.log",
                 deadlines=Deadlines(boot=5, per_test=1, total=20, after_sysrq=1),
                 say=lambda s: None,
                 spawn=fake_vm("echo 'harness: GUEST START'; sleep 30"))
    server.close()
    assert out.status is VmStatus.HANG
    sent = b"".join(received).decode()
    assert "sendkey alt-sysrq-w" in sent and "sendkey alt-sysrq-d" in sent


def test_crash_while_booting_gives_up_early(tmp_path: Path) -> None:
    # real first lines of a TCG early-boot crash (KASAN wild access in start_kernel)
    out = go(tmp_path, "echo '[    1.130926] BUG: KASAN: wild-memory-access in "
                       "do_raw_spin_lock+0x122/0x270'; sleep 30", boot=20)
    assert out.status is VmStatus.BOOT_FAILURE and "crashed while booting" in out.detail


def test_reports_after_the_guest_started_do_not_end_the_run(tmp_path: Path) -> None:
    out = go(tmp_path, "echo 'harness: GUEST START'; echo 'harness: BEGIN t.py::a';"
                       "echo '[    9.1] BUG: KASAN: slab-out-of-bounds in f+0x1/0x2'; sleep 1; exit 0")
    assert out.status is VmStatus.COMPLETED
