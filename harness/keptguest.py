"""A kept-alive guest: boot the built kernel once, run guest tests in it over SSH.

`make guest` calls start(): it boots the kernel with `vng --ssh=PORT --ssh-tcp`
and returns while the VM lives on; `make retest` loads the guest and run()s
commands in it over paramiko; `make guest-stop` calls stop().

How it works
------------
* A keeper process (`python -m harness.keeper keep CONFIG`, keeper.py), in a session
  of its own so that the caller can exit, runs vng -v with stdout and stderr
  on a pipe and copies all of it into console.log (the kernel console, one
  file for the guest's whole life).  A pipe and not the file itself: QEMU
  re-opens /proc/self/fd/1 and 2 for its serial and script ports (O_TRUNC,
  own offsets), which would overwrite a regular file from byte 0.  The keeper
  reports "ready" when the guest command printed READY_MARKER, writes
  ended.json when vng exits, and ends the VM after `lifetime` seconds, so a
  forgotten guest does not run for days.
* vng 1.42 --ssh=PORT --ssh-tcp (virtme-run --server ssh --port PORT
  --ssh-tcp): on the host it runs `ssh-keygen -A -f ~/.cache/virtme-ng/.ssh`
  (host keys in ~/.cache/virtme-ng/.ssh/etc/ssh/) and creates the client key
  ~/.cache/virtme-ng/.ssh/id_virtme (ed25519, no passphrase); it adds a
  virtio-net NIC on QEMU user networking with
  hostfwd=tcp:127.0.0.1:PORT-:22 (loopback only) and the kernel arguments
  virtme.dhcp net.ifnames=0 biosdevname=0 virtme.ssh virtme_ssh_channel=tcp
  virtme_ssh_cache=~/.cache/virtme-ng/.ssh.  In the guest, virtme-init runs
  virtme-sshd-script: it needs /usr/sbin/sshd (the host's, through the shared
  read-only root: Debian's openssh-server; the host's own sshd need not run),
  copies the host keys into /run/sshd/etc/ssh, writes authorized_keys from
  id_virtme.pub (and ~/.ssh/id_*.pub), a minimal sshd_config (Port 22,
  PermitRootLogin yes, UsePAM yes) and starts sshd as a daemon; DHCP on the
  NIC needs busybox (udhcpc).  Without --ssh-tcp vng would pick vsock when
  /dev/vhost-vsock and systemd-socket-activate exist; TCP works everywhere.
  We log in as root with id_virtme and check the server's key against the
  host keys vng generated (no "accept any key").
* The guest command (script mode, so the usual -no-reboot and panic=-1 hold:
  a panic ends QEMU; see guest_command()) masks root's ~/.bashrc inside the
  guest (sshd runs each command through the login shell, and bash sources
  it for SSH commands), creates the fifo STOP_FIFO, prints READY_MARKER to
  /dev/kmsg and blocks reading the fifo; stop() writes to it over SSH, the
  command ends and the guest powers itself off.  QEMU is killed only when
  that does not happen within a bound.  The command is a file,
  <state>/guest.sh: --exec travels on the kernel command line, which x86
  cuts at 2048 bytes (a longer one lost init= and booted the host's systemd).
* Speed: files reach the guest over 9p without a cache, about 20 ms each
  under TCG, so `import pytest` alone took 27-30 s per run.  cached_dirs
  (python_cache_dirs(): the interpreter's prefix and site-packages) are
  mounted again with cache=loose: after the first run 9 s; a retest of
  test_kernel.py went from 32 s to 16 s (a fresh boot running it: 92 s).
* Results: the guest sees the host's filesystem read-only (9p, no cache:
  edits of guest-tests/ are visible at once) except the --rwdir directories.
  Boot with the results root as an rwdir and every retest's results
  directory below it is written by the guest directly: nothing is copied.
  KeptGuest.writable() tells whether a directory is inside one.
* The cpu lock: start() takes it (the `lock` argument) around the boot only;
  an idle guest holds nothing (it would block every build).  A retest takes
  it around its run()s.  Every wait is bounded (Bounds); a guest that died
  raises GuestDied, one that stopped answering GuestUnresponsive, a command
  that went quiet or ran past its deadline CommandHung; the last two press
  sysrq w and d through the QEMU monitor first and taint the guest.

Every external thing is behind a Protocol (Host, SshConnector/SshSession/
SshChannel, Monitor, Clock, Keeper; in kept_model.py, with the errors, GuestSpec,
Bounds, GuestState and the helpers), so the unit tests need no VM.  The boot
steps start() runs (preflight, the waits for "ready" and for SSH) are in
kept_boot.py.  This
module starts its own long-lived processes (the keeper and, inside it, vng)
because procs.Runner only runs commands to completion.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Callable, NoReturn

from .kept_boot import await_ready, await_ssh, preflight, reset
from .kept_model import (
    READY_MARKER, STOP_FIFO, Bounds, Clock, CommandHung, Endpoint, GuestDied, GuestSpec,
    GuestState, GuestUnresponsive, KeptGuestError, Keeper, Limit, LockFactory, RealClock, Say,
    Seams, SshChannel, SshError, SshSession, StartCause, StartFailed, Window, _Paths, _Progress,
    _brief, _capture, _kill_vm, _read_pid, _when, _write_state, console_tail, guest_command,
    keeper_argv, vng_argv)

# what the kernel prints when sysrq w / d are done
_SYSRQ_DONE = ("Show Blocked State", "Show Locks Held")


def real_seams() -> Seams:
    from .keptreal import HmpMonitor, RealHost, paramiko_connect   # the real world, late
    return Seams(host=RealHost(), connect=paramiko_connect, monitor=HmpMonitor,
                 clock=RealClock())


# -- start ----------------------------------------------------------------------------------

def start(spec: GuestSpec, state_dir: Path, say: Say, *, bounds: Bounds = Bounds(),
          lock: LockFactory | None = None, seams: Seams | None = None) -> "KeptGuest":
    """Boots spec.kernel in the background and returns once SSH answers.

    Raises StartFailed naming the cause (and with the console tail); then
    nothing it started is left running.  `lock` (e.g. lambda:
    layout.cpu_lock(path, say)) is held from the spawn until SSH answers."""
    seams = seams or real_seams()
    paths = _Paths(state_dir)
    _refuse_running(paths, seams, bounds)
    preflight(spec, paths, seams.host)
    port = spec.port if spec.port is not None else seams.host.free_port()
    if not seams.host.port_free(port):
        raise StartFailed(StartCause.PORT_BUSY, f"127.0.0.1:{port} is in use; choose another port")
    reset(paths)
    paths.script.write_text("# the kept guest's command, written by harness/keptguest.py\n"
                            + guest_command(spec.masked_rc,
                                            tuple(str(d) for d in spec.cached_dirs)) + "\n")
    config = {"argv": vng_argv(spec, port=port, monitor=paths.monitor, pidfile=paths.pidfile,
                               script=paths.script),
              "console": str(paths.console), "ended": str(paths.ended),
              "lifetime": spec.lifetime, "marker": READY_MARKER,
              "path_prefix": str(Path(spec.vng).parent)}
    paths.keeper_config.write_text(json.dumps(config, indent=1) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] + env.get("PYTHONPATH", "").split(os.pathsep))
    kernel_stat = spec.kernel.stat()
    cached = tuple((str(d), d.stat().st_mtime_ns) for d in spec.cached_dirs)
    with lock() if lock else nullcontext():
        say(f"guest: booting {spec.kernel}, SSH on 127.0.0.1:{port}, console {paths.console}")
        t0 = seams.clock.monotonic()
        keeper = seams.host.spawn_keeper(keeper_argv(spec, paths.keeper_config), env=env,
                                         log=paths.keeper_log)
        spawned: list[int] = []
        try:
            vm_pgid = await_ready(keeper, paths, seams, bounds, spawned.append)
            qemu_pid = _read_pid(paths.pidfile)
            endpoint = Endpoint(port=port, user=spec.user, key=spec.ssh_dir / "id_virtme",
                                host_keys=tuple(sorted((spec.ssh_dir / "etc" / "ssh")
                                                       .glob("ssh_host_*_key.pub"))))
            session, release = await_ssh(endpoint, qemu_pid, paths, seams, bounds)
        except BaseException:
            _kill_vm(seams.host, keeper.pid, spawned[0] if spawned else None, bounds)
            raise
        finally:
            keeper.close()
        boot_seconds = seams.clock.monotonic() - t0
    state = GuestState(
        keeper_pid=keeper.pid, keeper_ticks=seams.host.start_ticks(keeper.pid),
        vm_pgid=vm_pgid, qemu_pid=qemu_pid, qemu_ticks=seams.host.start_ticks(qemu_pid),
        port=port, user=spec.user, key=str(endpoint.key),
        host_keys=tuple(str(p) for p in endpoint.host_keys), console=str(paths.console),
        monitor=str(paths.monitor), kernel=str(spec.kernel),
        kernel_mtime_ns=kernel_stat.st_mtime_ns, kernel_size=kernel_stat.st_size,
        release=release, append=spec.append, rwdirs=tuple(str(d) for d in spec.rwdirs),
        cached=cached,
        started=seams.clock.wall(), boot_seconds=boot_seconds, boot_id=seams.host.boot_id())
    _write_state(paths.state, state)
    say(f"guest: up after {boot_seconds:.0f}s, {release}; "
        f"ssh -p {port} -i {endpoint.key} {spec.user}@127.0.0.1")
    return KeptGuest(state_dir, state, seams=seams, bounds=bounds, session=session)


def _refuse_running(paths: _Paths, seams: Seams, bounds: Bounds) -> None:
    old = KeptGuest.load(paths.root, seams=seams, bounds=bounds)
    if old is None:
        return
    if old.process_problem() is None:
        raise StartFailed(StartCause.ALREADY_RUNNING,
                          f"a kept guest runs already (QEMU pid {old.state.qemu_pid}, "
                          f"port {old.state.port}, {old.state.release}); stop it first")
    old.stop(lambda s: None)   # leftovers of a guest that died: clear them


# -- a running guest ------------------------------------------------------------------------

class KeptGuest:
    def __init__(self, state_dir: Path, state: GuestState, *, seams: Seams, bounds: Bounds,
                 session: SshSession | None = None) -> None:
        self.state_dir = state_dir
        self.state = state
        self.seams = seams
        self.bounds = bounds
        self._session = session
        self._paths = _Paths(state_dir)

    @classmethod
    def load(cls, state_dir: Path, *, seams: Seams | None = None,
             bounds: Bounds = Bounds()) -> "KeptGuest | None":
        """The guest recorded in state_dir, alive or not; None if there is none."""
        path = _Paths(state_dir).state
        try:
            state = GuestState.from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise KeptGuestError(f"{path}: unreadable kept-guest state ({exc}); "
                                 "remove it once no guest runs") from exc
        return cls(state_dir, state, seams=seams or real_seams(), bounds=bounds)

    @property
    def console_log(self) -> Path:
        return Path(self.state.console)

    # -- liveness and staleness

    def process_problem(self) -> str | None:
        """None if the keeper and QEMU still run (same boot, same processes); else why not."""
        st, host = self.state, self.seams.host
        if host.boot_id() != st.boot_id:
            return "the host rebooted since the guest started"
        if host.start_ticks(st.qemu_pid) != st.qemu_ticks or st.qemu_ticks is None:
            return f"QEMU (pid {st.qemu_pid}) is gone" + self._ended()
        if host.start_ticks(st.keeper_pid) != st.keeper_ticks or st.keeper_ticks is None:
            return (f"the keeper (pid {st.keeper_pid}) is gone: the console is no longer "
                    "recorded")
        return None

    def _ended(self) -> str:
        try:
            ended = json.loads(self._paths.ended.read_text())
        except (OSError, ValueError):
            return ""
        return f" (vng exited with status {ended.get('status')})"

    def problem(self) -> str | None:
        """None if the processes run AND the guest runs `true` over SSH in bounds.probe."""
        why = self.process_problem()
        if why is None:
            why = self._probe()
        return why

    def alive(self) -> bool:
        return self.problem() is None

    def stale_reasons(self, kernel: Path | None = None,
                      append: tuple[str, ...] | None = None) -> list[str]:
        """Why tests in this guest would not test what a boot would (empty: none).

        kernel/append: what a boot would use now (default: what the guest booted)."""
        st = self.state
        reasons = []
        if kernel is not None and kernel.resolve() != Path(st.kernel).resolve():
            reasons.append(f"the guest runs {st.kernel}, not {kernel}")
        try:
            now = Path(st.kernel).stat()
        except OSError:
            reasons.append(f"{st.kernel} is gone")
        else:
            if (now.st_mtime_ns, now.st_size) != (st.kernel_mtime_ns, st.kernel_size):
                reasons.append(
                    f"{st.kernel} was rebuilt at {_when(now.st_mtime_ns / 1e9)}, after the "
                    f"guest booted it at {_when(st.started)}")
        for d, mtime in st.cached:
            try:
                changed = Path(d).stat().st_mtime_ns != mtime
            except OSError:
                changed = True
            if changed:
                reasons.append(f"{d} changed since the guest booted (the guest caches it)")
        if append is not None and tuple(append) != st.append:
            reasons.append(f"kernel arguments changed: booted with {' '.join(st.append)}")
        if st.tainted:
            reasons.append(f"tainted: {st.tainted}")
        return reasons

    def mark_tainted(self, reason: str) -> None:
        """Records that the guest should not be reused (a hang, a kernel report that disarms
        lockdep, ...); stale_reasons() says so from then on, in every process."""
        if self.state.tainted:
            reason = f"{self.state.tainted}; {reason}"
        self.state = replace(self.state, tainted=reason)
        _write_state(self._paths.state, self.state)

    def writable(self, path: Path) -> bool:
        """Whether the guest can write path (inside an --rwdir)."""
        path = path.resolve()
        return any(path == Path(d).resolve() or Path(d).resolve() in path.parents
                   for d in self.state.rwdirs)

    # -- the console

    def console_offset(self) -> int:
        try:
            return self.console_log.stat().st_size
        except OSError:
            return 0

    def console_since(self, offset: int) -> str:
        """Console text written since offset (bytes decoded: keep \\r\\r\\n as scan_file does)."""
        try:
            with open(self.console_log, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def wait_console(self, offset: int, needles: tuple[str, ...], timeout: float) -> bool:
        """Waits (polling, bounded) until every needle is in the console after offset: the
        keeper copies the console asynchronously, so a marker the guest printed just before
        a command ended may need a moment."""
        clock = self.seams.clock
        deadline = clock.monotonic() + timeout
        delay = 0.05
        while True:
            text = self.console_since(offset)
            if all(n in text for n in needles):
                return True
            if clock.monotonic() >= deadline:
                return False
            clock.sleep(min(delay, max(0.0, deadline - clock.monotonic())))
            delay = min(delay * 2, 1.0)

    # -- commands

    def session(self) -> SshSession:
        """The SSH session (connected on first use); GuestDied/GuestUnresponsive if none."""
        try:
            return self._connected()
        except SshError as exc:
            self._raise_lost(f"cannot connect over SSH: {exc}")

    def _connected(self) -> SshSession:
        if self._session is None:
            st = self.state
            endpoint = Endpoint(port=st.port, user=st.user, key=Path(st.key),
                                host_keys=tuple(Path(p) for p in st.host_keys))
            self._session = self.seams.connect(endpoint, self.bounds.probe)
        return self._session

    def _drop_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _probe(self) -> str | None:
        try:
            code, _ = _capture(self._connected(), "true", self.bounds.probe, self.seams.clock)
        except SshError as exc:
            self._drop_session()
            return f"the guest did not run `true` over SSH within {self.bounds.probe:.0f}s: {exc}"
        return None if code == 0 else f"`true` exited with {code}"

    def run(self, command: str, *, on_line: Callable[[str], None], idle_timeout: Limit,
            total_timeout: float, on_console: Callable[[str], None] | None = None,
            console_counts: bool = True, poll: float = 1.0) -> int:
        """Runs a shell command in the guest, streaming its output (stdout and stderr, merged)
        line by line to on_line; returns its exit status (255: it ended without one, e.g.
        killed by a signal).  on_console, if given, gets the console's new lines as they come
        (the harness markers: progress).  No progress (output, or console output when
        console_counts) for idle_timeout, or total_timeout in all: sysrq w,d, CommandHung.
        idle_timeout may be a function, asked at every wake-up: e.g. the running test's
        budget (from its BEGIN marker, seen through on_console) plus the host's grace.
        A quiet command makes run() probe the guest every bounds.probe_interval: no answer
        -> GuestUnresponsive; QEMU gone -> GuestDied.  Never waits without a bound."""
        problem = self.process_problem()
        if problem is not None:
            raise GuestDied(problem, console_tail(self.console_log))
        watch = _Progress(self, self.seams.clock, on_line, on_console, console_counts)
        try:
            chan = self.session().exec(command, self.bounds.probe)
        except SshError as exc:
            self._drop_session()
            self._raise_lost(f"the guest did not start the command: {exc}")
        try:
            return self._pump(command, chan, watch, idle_timeout, total_timeout,
                              poll if on_console else None)
        finally:
            watch.flush()   # a partial last line too, also when the command hung
            chan.close()

    def run_window(self, command: str, *, on_line: Callable[[str], None], idle_timeout: Limit,
                   total_timeout: float, on_console: Callable[[str], None] | None = None,
                   done_marker: str | None = None, settle: float = 10.0,
                   lock: LockFactory | None = None) -> "Window":
        """run() for a retest: holds `lock` (the cpu lock) while the command runs, and
        returns the console text written meanwhile (waiting up to `settle` s for
        done_marker, e.g. "harness: GUEST DONE", to come through) for the log scan.  A
        guest error does not raise: it is in Window.error, with the window up to and
        including the sysrq dumps, so the report can still show what the kernel said."""
        offset = self.console_offset()
        clock = self.seams.clock
        t0 = clock.monotonic()
        code: int | None = None
        error: KeptGuestError | None = None
        with lock() if lock else nullcontext():
            try:
                code = self.run(command, on_line=on_line, idle_timeout=idle_timeout,
                                total_timeout=total_timeout, on_console=on_console)
            except KeptGuestError as exc:
                error = exc
        seconds = clock.monotonic() - t0
        if done_marker is not None and error is None:
            self.wait_console(offset, (done_marker,), settle)
        return Window(exit_code=code, console=self.console_since(offset), seconds=seconds,
                      error=error)

    def _pump(self, command: str, chan: SshChannel, watch: "_Progress", idle_timeout: Limit,
              total_timeout: float, poll: float | None) -> int:
        clock = self.seams.clock
        start = clock.monotonic()
        deadline = start + total_timeout
        last_probe = start
        while True:
            now = clock.monotonic()
            idle = idle_timeout() if callable(idle_timeout) else idle_timeout
            wake = min(deadline, watch.last + idle,
                       max(watch.last, last_probe) + self.bounds.probe_interval,
                       now + poll if poll else float("inf"))
            data = chan.recv(max(0.0, wake - now))
            if data == b"":
                break
            watch.output(data)
            watch.console()
            now = clock.monotonic()
            if now >= deadline:
                self._hung(f"`{_brief(command)}` ran past its {total_timeout:.0f}s deadline",
                           idle=False)
            idle = idle_timeout() if callable(idle_timeout) else idle_timeout
            if now - watch.last >= idle:
                self._hung(f"`{_brief(command)}` made no progress for {idle:.0f}s",
                           idle=True)
            if now - max(watch.last, last_probe) >= self.bounds.probe_interval:
                why = self._probe()
                if why is not None:
                    self._raise_lost(why)
                last_probe = clock.monotonic()
        watch.flush()
        status = chan.exit_status(self.bounds.probe)
        if status is not None and status >= 0:
            return status
        # the session ended without a status: the guest died, or the command was killed
        self._drop_session()
        problem = self.process_problem()
        if problem is not None:
            raise GuestDied(problem, console_tail(self.console_log))
        why = self._probe()
        if why is not None:
            self._raise_lost(why)
        watch.on_line("kept guest: the command ended without an exit status "
                      "(killed by a signal?)")
        return 255

    def _raise_lost(self, why: str) -> NoReturn:
        """The guest does not answer: GuestDied if QEMU is gone, else sysrq + GuestUnresponsive."""
        problem = self.process_problem()
        if problem is not None:
            raise GuestDied(f"{problem} ({why})", console_tail(self.console_log))
        self._sysrq_and_wait()
        self._drop_session()
        self.mark_tainted(f"unresponsive: {why}")
        raise GuestUnresponsive(why, console_tail(self.console_log, 80))

    def _hung(self, why: str, *, idle: bool) -> NoReturn:
        """A command that stopped progressing: is it the guest?  Else sysrq, CommandHung."""
        lost = self._probe()
        if lost is not None:
            self._raise_lost(f"{why}; then {lost}")
        self._sysrq_and_wait()
        self._drop_session()   # closing the session hangs up the command, if it can end
        self.mark_tainted(f"a command hung: {why}")
        raise CommandHung(why, console_tail(self.console_log, 80), idle=idle)

    def sysrq(self, keys: str = "wd") -> bool:
        why = self.seams.monitor(Path(self.state.monitor)).sysrq(keys)
        return why is None

    def _sysrq_and_wait(self) -> None:
        """Blocked tasks (w) and held locks (d) into the console, before anything is killed."""
        offset = self.console_offset()
        if self.sysrq("wd"):
            self.wait_console(offset, _SYSRQ_DONE, self.bounds.after_sysrq)

    # -- the end

    def stop(self, say: Say) -> None:
        """Asks the guest to power off, kills it after bounds.stop, removes the state."""
        st, host = self.state, self.seams.host
        if self.process_problem() is None:
            asked: str | None = None
            try:
                _capture(self._connected(), f"echo stop > {STOP_FIFO}", self.bounds.probe,
                         self.seams.clock)
            except SshError as exc:
                asked = str(exc)   # also when the guest powered off before the status came
            self._drop_session()
            if host.wait_gone(st.qemu_pid, st.qemu_ticks, self.bounds.stop):
                # vng and then the keeper end on their own once QEMU is gone
                host.wait_gone(st.keeper_pid, st.keeper_ticks, self.bounds.kill)
            else:
                say(f"guest: still running {self.bounds.stop:.0f}s after the poweroff request"
                    + (f" ({asked})" if asked else "") + "; killing it")
        self._drop_session()
        if host.boot_id() == st.boot_id:
            qemu_ours = host.start_ticks(st.qemu_pid) == st.qemu_ticks
            _kill_vm(host,
                     st.keeper_pid if host.start_ticks(st.keeper_pid) == st.keeper_ticks else None,
                     st.vm_pgid if qemu_ours else None, self.bounds,
                     st.qemu_pid if qemu_ours else None)
        for p in (self._paths.state, self._paths.monitor, self._paths.pidfile):
            p.unlink(missing_ok=True)
        say(f"guest: stopped; its console stays in {self.console_log}")


def stop(state_dir: Path, say: Say, *, seams: Seams | None = None,
         bounds: Bounds = Bounds()) -> bool:
    """Stops the guest recorded in state_dir; False if there was none."""
    guest = KeptGuest.load(state_dir, seams=seams, bounds=bounds)
    if guest is None:
        return False
    guest.stop(say)
    return True
