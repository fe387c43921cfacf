"""Follow /dev/kmsg: wait until the kernel has printed given messages.

Each read() of /dev/kmsg returns one record, "prio,seq,usec,flags;text\\n" plus
continuation lines; poll() says when a new record is there.
"""

from __future__ import annotations

import os
import re
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# How many recent messages a failed wait shows.
TAIL_ON_FAILURE = 40
_RECORD_MAX = 8192
_RECORD_HEAD = re.compile(r"^\d+,\d+,\d+,[^;]*$")   # prio,seq,usec,flags[,...]


class KmsgFollower:
    """Reads the records written to the kernel log after it was opened."""

    def __init__(self, path: Path = Path("/dev/kmsg")) -> None:
        self.seen: list[str] = []
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self._fd, 0, os.SEEK_END)
        self._partial = b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _drain(self) -> Iterator[str]:
        while True:
            try:
                chunk = os.read(self._fd, _RECORD_MAX)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # records were overwritten before we read them; go on with the next
            if not chunk:
                return    # a plain file (the runner's self-tests) at its end
            # /dev/kmsg gives one whole record per read; a plain file gives
            # whatever it holds, so keep a cut line for the next read
            lines = (self._partial + chunk).decode(errors="replace").split("\n")
            self._partial = lines.pop().encode()
            for line in lines:
                if not line or line.startswith(" "):
                    continue  # a record's " KEY=value" continuation lines
                head, sep, text = line.partition(";")
                message = text if sep and _RECORD_HEAD.match(head) else line
                self.seen.append(message)
                yield message

    def new_messages(self) -> list[str]:
        """Every message written since the last call (or since opening)."""
        return list(self._drain())

    def wait_for(self, *patterns: re.Pattern[str], timeout_s: float) -> list[str]:
        """New messages matching each pattern, in any order; fails the test after timeout_s."""
        found: dict[re.Pattern[str], str] = {}
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while True:
            for message in self._drain():
                for pattern in patterns:
                    if pattern not in found and pattern.search(message):
                        found[pattern] = message
                if len(found) == len(patterns):
                    return [found[p] for p in patterns]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [p.pattern for p in patterns if p not in found]
                tail = "\n".join(self.seen[-TAIL_ON_FAILURE:])
                pytest.fail(
                    f"no kernel message matching {missing} within {timeout_s:g} s; "
                    f"last messages:\n{tail}"
                )
            poller.poll(max(1, int(remaining * 1000)))
