"""The single place that starts external programs.

Every stage calls make, git, apt-get, vng... through a `Runner`, so unit
tests replace it with a fake that records argv lists and answers from a
script, and a --dry-run prints what would run.  Commands are argv lists,
never shell strings.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

LineSink = Callable[[str], None]
from .errors import HarnessError


class CommandError(HarnessError):
    """A command failed; carries enough of its output to explain why."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str,
                 log_path: Path | None = None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.log_path = log_path
        where = f" (full log: {log_path})" if log_path else ""
        tail = "\n".join(output.rstrip().splitlines()[-15:])
        super().__init__(f"`{shlex.join(self.argv)}` exited with status "
                         f"{returncode}{where}\n{tail}")


class MissingProgram(CommandError):
    def __init__(self, argv: Sequence[str]) -> None:
        super().__init__(argv, 127, f"{argv[0]}: not found on PATH")


@dataclass(frozen=True, kw_only=True)
class Completed:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr, interleaved as the program wrote them


class Runner(Protocol):
    def run(self, argv: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, check: bool = True,
            log_path: Path | None = None, on_line: LineSink | None = None,
            timeout: float | None = None, input_text: str | None = None
            ) -> Completed: ...


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return merged


@dataclass
class SubprocessRunner:
    """Runs commands for real, streaming their output line by line.

    The whole output goes to `log_path` when one is given, only the last
    lines are kept in memory: a kernel build prints hundreds of thousands.
    """

    verbose: bool = False
    dry_run: bool = False
    keep_lines: int = 4000
    echo: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr))

    def run(self, argv: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, check: bool = True,
            log_path: Path | None = None, on_line: LineSink | None = None,
            timeout: float | None = None, input_text: str | None = None
            ) -> Completed:
        argv = [str(a) for a in argv]
        if self.verbose or self.dry_run:
            prefix = f"(cd {shlex.quote(str(cwd))} && " if cwd else ""
            self.echo(f"+ {prefix}{shlex.join(argv)}{')' if cwd else ''}")
        if self.dry_run:
            return Completed(argv=argv, returncode=0, output="")
        tail: deque[str] = deque(maxlen=self.keep_lines)
        log = open(log_path, "a", encoding="utf-8", errors="replace") if log_path else None
        try:
            try:
                proc = subprocess.Popen(
                    argv, cwd=cwd, env=_merged_env(env),
                    stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True, errors="replace", bufsize=1)
            except FileNotFoundError as exc:
                raise MissingProgram(argv) from exc
            timer: threading.Timer | None = None
            if timeout is not None:
                timer = threading.Timer(timeout, proc.kill)
                timer.start()
            if input_text is not None:
                assert proc.stdin is not None
                proc.stdin.write(input_text)
                proc.stdin.close()
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                if log:
                    log.write(line + "\n")
                if on_line:
                    on_line(line)
            returncode = proc.wait()
            if timer:
                timer.cancel()
        finally:
            if log:
                log.close()
        output = "\n".join(tail)
        if check and returncode != 0:
            raise CommandError(argv, returncode, output, log_path)
        return Completed(argv=argv, returncode=returncode, output=output)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a `kill`, a `timeout`, a closed terminal) raise
    KeyboardInterrupt inside the block, as Ctrl-C does, so that the cleanup
    written for it runs too: a kept guest's boot then kills the VM it started
    instead of leaving QEMU behind with no state file for guest-stop."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"{signal.Signals(signum).name}")

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
