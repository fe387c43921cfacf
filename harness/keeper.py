"""The keeper process of a kept guest (`python -m harness.keeper keep CONFIG`): runs
vng in a session of its own, copies its console into a file, says when the guest
is ready, records vng's exit and ends a forgotten guest (see keptguest.py)."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Callable

from .kept_model import Clock, RealClock


# -- the keeper process ---------------------------------------------------------------------

class _Status:
    """The keeper's status pipe to start(); a parent that left is no error."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def pump(fd: int, sink: IO[bytes], *, marker: bytes, on_ready: Callable[[], None],
         timeout: float, on_timeout: Callable[[], float | None],
         clock: Clock = RealClock()) -> None:
    """Copies fd to sink until EOF; calls on_ready once marker went by.  When `timeout`
    passes without EOF, on_timeout() is called and returns the next timeout (None: none)."""
    window = b""
    ready = False
    deadline: float | None = clock.monotonic() + timeout
    while True:
        wait = None if deadline is None else max(0.0, deadline - clock.monotonic())
        readable, _, _ = select.select([fd], [], [], wait)
        if not readable:
            nxt = on_timeout()
            deadline = None if nxt is None else clock.monotonic() + nxt
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        sink.write(chunk)
        sink.flush()
        if not ready:
            window = (window + chunk)[-(len(marker) + 65536):]
            if marker in window:
                ready = True
                on_ready()


def keeper_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.keptguest",
                                     description="keeps a guest's vng running; see start()")
    sub = parser.add_subparsers(dest="cmd", required=True)
    keep = sub.add_parser("keep", help="run vng as described in CONFIG, console to a file")
    keep.add_argument("config", type=Path)
    keep.add_argument("--status-fd", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    status = _Status(args.status_fd)
    env = dict(os.environ)
    env["PATH"] = cfg["path_prefix"] + os.pathsep + env.get("PATH", "")
    argv_vng = [str(a) for a in cfg["argv"]]
    with open(cfg["console"], "ab") as console:
        console.write(f"### harness: kept guest: {' '.join(argv_vng)}\n".encode())
        console.flush()
        proc = subprocess.Popen(argv_vng, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, process_group=0)
        status.send(f"spawned {proc.pid}")
        assert proc.stdout is not None

        def terminate(signum: int, frame: object) -> None:
            # killed: take the VM along (QEMU is in vng's process group, not ours)
            console.write(f"\n### harness: kept guest: keeper got signal {signum}\n".encode())
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, terminate)
        kills = iter([(signal.SIGTERM, 15.0), (signal.SIGKILL, None)])

        def expire() -> float | None:
            sig, nxt = next(kills, (signal.SIGKILL, None))
            console.write(f"\n### harness: kept guest: lifetime over, {sig.name}\n".encode())
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            return nxt

        def ready() -> None:
            status.send("ready")
            status.close()

        pump(proc.stdout.fileno(), console, marker=cfg["marker"].encode(), on_ready=ready,
             timeout=float(cfg["lifetime"]), on_timeout=expire)
        code = proc.wait()
        console.write(f"\n### harness: kept guest ended, vng status {code}\n".encode())
    Path(cfg["ended"]).write_text(json.dumps({"status": code, "at": time.time()}) + "\n")
    status.send(f"exit {code}")
    status.close()
    return 0


if __name__ == "__main__":
    sys.exit(keeper_main(sys.argv[1:]))
