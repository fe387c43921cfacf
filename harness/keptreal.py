"""The kept guest's real world: the host's processes, SSH through paramiko, sysrq
through the QEMU monitor.  keptguest.py reaches them through the Protocols in
kept_model.py (Host, SshConnector, Monitor), so its tests replace them with fakes."""

from __future__ import annotations

import logging
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .kept_model import Endpoint, Keeper, SshChannel, SshError, SshSession


# -- the real host --------------------------------------------------------------------------

class _PipeKeeper:
    def __init__(self, proc: subprocess.Popen[bytes], fd: int) -> None:
        self.pid = proc.pid
        self._proc = proc
        self._fd: int | None = fd
        self._buf = b""

    def event(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if self._fd is None:
                return ""
            ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self._fd, 4096)
            if not chunk:
                os.close(self._fd)
                self._fd = None
                if not self._buf:
                    return ""
                self._buf += b"\n"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._proc.returncode = self._proc.poll()  # reap it if it ended; never wait


class RealHost:
    def spawn_keeper(self, argv: list[str], *, env: Mapping[str, str], log: Path) -> Keeper:
        r, w = os.pipe()
        try:
            with open(log, "ab") as out:
                proc = subprocess.Popen([*argv, "--status-fd", str(w)], stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, env=dict(env),
                                        pass_fds=(w,), start_new_session=True)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        return _PipeKeeper(proc, r)

    def start_ticks(self, pid: int) -> int | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            return None
        return int(fields[19])   # field 22 of stat(5): starttime

    def wait_gone(self, pid: int, ticks: int | None, timeout: float) -> bool:
        now = self.start_ticks(pid)
        if now is None or (ticks is not None and now != ticks):
            return True
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return self.start_ticks(pid) is None
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        return self.start_ticks(pid) is None

    def kill(self, pid: int, sig: int, *, group: bool = False) -> None:
        try:
            (os.killpg if group else os.kill)(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def port_free(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def free_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def boot_id(self) -> str:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    def which(self, program: str) -> str | None:
        return shutil.which(program)


# -- SSH with paramiko ----------------------------------------------------------------------

@contextmanager
def _watchdog(timeout: float, expire: Callable[[], None]) -> Iterator[threading.Event]:
    """Calls expire() if the block is still running after timeout (paramiko waits on some
    replies without a timeout: closing the transport ends those waits)."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        expire()

    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


class _ParamikoChannel:
    def __init__(self, chan: Any) -> None:
        self._chan = chan

    def recv(self, timeout: float) -> bytes | None:
        self._chan.settimeout(max(0.0, timeout))
        try:
            data: bytes = self._chan.recv(65536)
        except socket.timeout:
            return None
        return data

    def exit_status(self, timeout: float) -> int | None:
        if not self._chan.status_event.wait(max(0.0, timeout)):
            return None
        return int(self._chan.exit_status)

    def close(self) -> None:
        self._chan.close()


class _ParamikoSession:
    def __init__(self, client: Any) -> None:
        self._client = client

    def exec(self, command: str, timeout: float) -> SshChannel:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise SshError("the SSH connection is closed")
        with _watchdog(timeout, transport.close) as fired:
            try:
                chan = transport.open_session(timeout=timeout)
                chan.set_combine_stderr(True)
                chan.exec_command(command)
            except Exception as exc:
                why = f"no answer within {timeout:.0f}s" if fired.is_set() else str(exc)
                raise SshError(f"exec `{command[:80]}`: {why}") from exc
        return _ParamikoChannel(chan)

    def close(self) -> None:
        self._client.close()


def paramiko_connect(endpoint: Endpoint, timeout: float) -> SshSession:
    """Logs in with vng's key, accepting only the host keys vng generated for the guest."""
    import paramiko

    # paramiko logs every failed attempt (normal while the guest boots) through logging's
    # last-resort handler to stderr; a handler of its own keeps that off the terminal
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    client = paramiko.SSHClient()
    name = f"[{endpoint.host}]:{endpoint.port}"
    known = client.get_host_keys()
    for path in endpoint.host_keys:
        for line in path.read_text().splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{name} {line}")
            if entry is not None and entry.key is not None:
                known.add(name, entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as exc:
        raise SshError(f"connect to {name}: {exc}") from exc
    with _watchdog(timeout, sock.close) as fired:
        try:
            client.connect(endpoint.host, port=endpoint.port, username=endpoint.user,
                           key_filename=str(endpoint.key), sock=sock, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout,
                           allow_agent=False, look_for_keys=False)
        except Exception as exc:
            client.close()
            sock.close()
            why = f"no answer within {timeout:.0f}s" if fired.is_set() else \
                f"{type(exc).__name__}: {exc}"
            raise SshError(f"ssh {endpoint.user}@{name}: {why}") from exc
    return _ParamikoSession(client)


# -- sysrq through the QEMU monitor ---------------------------------------------------------

class HmpMonitor:
    """QEMU's human monitor on a unix socket; each command is done when the prompt returns
    (sendkey queues the key release, so two keys need no pause between them)."""

    PROMPT = b"(qemu) "

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def sysrq(self, keys: str) -> str | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                self._prompt(sock)
                for key in keys:
                    sock.sendall(f"sendkey alt-sysrq-{key}\n".encode())
                    self._prompt(sock)
        except OSError as exc:
            return f"QEMU monitor {self.path}: {exc}"
        return None

    def _prompt(self, sock: socket.socket) -> None:
        seen = b""
        while not seen.endswith(self.PROMPT):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the monitor closed the connection")
            seen = (seen + chunk)[-256:]
