"""The kept guest's start, load, liveness, staleness and stop, against fakes."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from harness import keeper, keptreal
from harness import kept_model as km
from harness import keptguest as kg
from harness.kept_model import Bounds, GuestSpec, StartCause, StartFailed
from harness.keptguest import KeptGuest


from harness.tests.keptfakes import BOUNDS, KEEPER, QEMU, VNG, FakeChannel, World


# -- the vng command line --------------------------------------------------------------------

def test_vng_argv_asks_for_ssh_over_tcp_a_monitor_and_a_pid_file() -> None:
    spec = GuestSpec(kernel=Path("/b/bzImage"), vng="/v/vng", append=("no5lvl", "log_buf_len=8M"),
                     rwdirs=(Path("/r"),))
    argv = km.vng_argv(spec, port=40022, monitor=Path("/s/mon.sock"), pidfile=Path("/s/q.pid"),
                       script=Path("/s/guest.sh"))
    assert argv[:4] == ["/v/vng", "-v", "-r", "/b/bzImage"]
    assert "--ssh=40022" in argv and "--ssh-tcp" in argv and "--disable-kvm" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--append"] == ["no5lvl",
                                                                          "log_buf_len=8M"]
    assert argv[argv.index("--rwdir") + 1] == "/r"
    with_cache = km.vng_argv(GuestSpec(kernel=Path("/k"), cached_dirs=(Path("/usr/lib/python3.11"),)),
                             port=1, monitor=Path("/m"), pidfile=Path("/p"), script=Path("/s"))
    assert with_cache[with_cache.index("--rodir") + 1] == "/usr/lib/python3.11"
    assert "--qemu-opts=-monitor unix:/s/mon.sock,server=on,wait=off -pidfile /s/q.pid" in argv
    assert argv[-2:] == ["--exec", "sh /s/guest.sh"]
    command = km.guest_command(("/root/.bashrc",))
    assert command.startswith("{ [ ! -f /root/.bashrc ] || mount --bind /dev/null /root/.bashrc; }; ")
    cached = km.guest_command(cached=("/usr/lib/python3.11",))
    assert "umount /usr/lib/python3.11 && mount -t 9p" in cached and "cache=loose" in cached
    assert "is not page-cached" in cached
    assert command.endswith(f"echo '<5>{km.READY_MARKER}' > /dev/kmsg && read x < {km.STOP_FIFO}")
    assert "--disable-kvm" not in km.vng_argv(GuestSpec(kernel=Path("/k"), kvm=True), port=1,
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
    assert world.host.spawned[0][:4] == ["/venv/bin/python", "-m", "harness.keeper", "keep"]
    config = json.loads((world.state_dir / "keeper.json").read_text())
    assert "--ssh=40022" in config["argv"] and config["marker"] == km.READY_MARKER
    script = world.state_dir / "guest.sh"
    assert config["argv"][-2:] == ["--exec", f"sh {script}"]
    assert km.guest_command(("/root/.bashrc",)) in script.read_text()
    saved = KeptGuest.load(world.state_dir, seams=world.seams)
    assert saved is not None and saved.state == guest.state
    assert world.host.killed == []
    assert "ssh -p 40022" in world.said[-1]


def _nothing_left(world: World) -> None:
    assert not (world.state_dir / km.STATE_FILE).exists()
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
    assert not (world.state_dir / km.STATE_FILE).exists()
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
    assert world.host.killed == [] and not (world.state_dir / km.STATE_FILE).exists()
