"""Running uringcr and the checkpoint scenarios' ring owners (c/cr_*.c).

An owner builds its rings, prints "expect <what> key=value ..." lines for
what it built, says "owner ready pid=<pid>" and waits on stdin. The test
dumps it with uringcr from this (another) process, compares the image with
the expect lines and with views that do not come from uringcr (fdinfo,
maps, pagemap, stat), then writes "go": the owner checks that its rings are
exactly as it left them and still work, and prints its KTAP result.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import EXIT_PASS, KTAP_RESULT, Finished, Helpers, Started

READY = re.compile(r"^owner ready pid=(\d+)$", re.M)
EXPECT = re.compile(r"^expect (\S+) (.*)$")

# a scenario's resume mode: the restore's line (resume.c)
RESUMED = re.compile(r"^resume restored fd=\d+ new_fds=(?P<fds>\d+) restore_us=(?P<us>\d+) "
                     r".*nops=(?P<nops>\d+)")

# uringcr's exit statuses (src/uringcr.c)
UCR_OK, UCR_FAILED, UCR_USAGE, UCR_REFUSED = 0, 1, 2, 3


def _value(raw: str) -> int | str:
    try:
        return int(raw, 0)
    except ValueError:
        return raw


def parse_expects(text: str) -> list[tuple[str, dict[str, int | str]]]:
    found = []
    for line in text.splitlines():
        m = EXPECT.match(line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(2).split())
            found.append((m.group(1), {k: _value(v) for k, v in fields.items()}))
    return found


def proc_state(pid: int) -> str:
    """The state letter of the process's main thread ('T' stopped), '' if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


@dataclass
class Owner:
    started: Started
    pid: int
    expects: list[tuple[str, dict[str, int | str]]] = field(default_factory=list)

    def expect(self, what: str) -> list[dict[str, int | str]]:
        return [fields for kind, fields in self.expects if kind == what]

    def one(self, what: str) -> dict[str, int | str]:
        found = self.expect(what)
        assert len(found) == 1, f"the owner printed {len(found)} 'expect {what}' lines"
        return found[0]

    def buf_table(self) -> str:
        """The "ring:slot:addr:len,..." table of the owner's "expect buf" lines, which
        the scenarios' resume modes take."""
        return ",".join(f"{b['ring']}:{b['slot']}:{b['addr']}:{b['len']}"
                        for b in self.expect("buf"))

    def state(self) -> str:
        return proc_state(self.pid)

    def wait_state(self, want_stopped: bool, timeout: float) -> str:
        """Polls (with backoff) until the owner is, or is not, stopped."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            state = self.state()
            if (state == "T") == want_stopped or time.monotonic() > deadline:
                return state
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def send_go(self, args: str = "", close: bool = True) -> None:
        """Writes "go [args]" to the owner (it starts its continuation); closes its
        stdin unless @close is False."""
        proc = self.started.proc
        assert proc.stdin is not None
        try:
            proc.stdin.write(f"go {args}\n".encode() if args else b"go\n")
            proc.stdin.flush()
            if close:
                proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait_output(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Polls the owner's output until @pattern matches a line in it."""
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            m = pattern.search(self.started.text())
            if m:
                return m
            if self.started.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"owner {self.pid} never printed {pattern.pattern!r}:\n"
                            f"{self.started.text()}", pytrace=False)
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def go(self, timeout: float, args: str = "") -> str:
        """Lets the owner finish; fails the test unless it passed. Its output."""
        proc = self.started.proc
        state = self.state()
        assert state != "T", f"owner {self.pid} was left stopped after the dump"
        if proc.stdin is not None and not proc.stdin.closed:
            self.send_go(args)
        try:
            code = proc.wait(timeout)
        except Exception:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"owner {self.pid} did not finish within {timeout:.0f} s after go:\n"
                        f"{self.started.text()}", pytrace=False)
        text = self.started.text()
        result = None
        for line in text.splitlines():
            m = KTAP_RESULT.match(line)
            if m:
                result = m
        if code != EXIT_PASS or result is None or result.group("ok") != "ok":
            pytest.fail(f"owner {self.pid} exited {code} after go:\n{text}", pytrace=False)
        return text

    def kill(self) -> None:
        """SIGKILL, helpers first ("expect holder pid=": a child holding the ring's
        uring_lock, which the owner's exit would wait for)."""
        for holder in self.expect("holder"):
            try:
                os.kill(int(holder["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.started.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.started.proc.wait(10)


def start_owner(helpers: Helpers, name: str, *args: str, label: str | None = None) -> Owner:
    """Starts owner @name and waits (within the test's budget) until it is ready."""
    started = helpers.start(name, *args, stdin=True, label=label)
    deadline = time.monotonic() + max(helpers.budget.remaining() / 2, 1.0)
    pause = 0.01
    while True:
        text = started.text()
        m = READY.search(text)
        if m:
            return Owner(started=started, pid=int(m.group(1)), expects=parse_expects(text))
        if started.proc.poll() is not None or time.monotonic() > deadline:
            if started.proc.poll() is None:
                started.proc.kill()
                started.proc.wait(10)
            pytest.fail(f"{name} {' '.join(args)} never became ready "
                        f"(exit {started.proc.returncode}):\n{text}", pytrace=False)
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class Uringcr:
    """uringcr (built into HARNESS_GUEST_BIN/uringcr) run within the test's budget."""

    def __init__(self, helpers: Helpers) -> None:
        self.helpers = helpers
        self.exe = helpers.guest_bin / "uringcr" / "uringcr"
        if not self.exe.is_file():
            pytest.fail(f"{self.exe} is missing: make -C guest-tests builds it", pytrace=False)

    def run(self, *args: str | Path, label: str, prefix: tuple[str, ...] = ()) -> Finished:
        return self.helpers.command([*prefix, self.exe, *map(str, args)], label=label)

    @staticmethod
    def json_of(finished: Finished) -> dict[str, Any]:
        for line in finished.lines:
            if line.startswith("{"):
                loaded: dict[str, Any] = json.loads(line)
                return loaded
        pytest.fail(f"no JSON in the output\n{finished.describe()}", pytrace=False)

    def dump(self, owner: Owner, image: Path, *extra: str, label: str = "dump",
             want: int = UCR_OK, prefix: tuple[str, ...] = ()) -> tuple[Finished, dict[str, Any]]:
        """uringcr dump --json of @owner into @image; fails unless it exits @want.
        The report, when uringcr printed one (it does once it found the rings)."""
        finished = self.run("dump", "--pid", str(owner.pid), "-o", image, "--json", *extra,
                            label=label, prefix=prefix)
        if finished.returncode != want:
            pytest.fail(f"uringcr dump exited {finished.returncode}, not {want}\n"
                        f"{finished.describe()}", pytrace=False)
        has_json = any(line.startswith("{") for line in finished.lines)
        report = self.json_of(finished) if want in (UCR_OK, UCR_REFUSED) or has_json else {}
        return finished, report

    def check(self, owner: Owner, *extra: str, want: int,
              prefix: tuple[str, ...] = ()) -> dict[str, Any]:
        finished = self.run("check", "--pid", str(owner.pid), "--json", *extra, label="check",
                            prefix=prefix)
        if finished.returncode != want:
            pytest.fail(f"uringcr check exited {finished.returncode}, not {want}\n"
                        f"{finished.describe()}", pytrace=False)
        return self.json_of(finished)

    def show(self, image: Path, keep: bool = True) -> dict[str, Any]:
        """uringcr show --json; its output kept with the results unless @keep is False
        (the big tables' JSON is megabytes)."""
        finished = self.helpers.command([self.exe, "show", str(image), "--json"],
                                        label="show" if keep else None)
        if finished.returncode != UCR_OK:
            pytest.fail(f"uringcr show failed\n{finished.describe()}", pytrace=False)
        return self.json_of(finished)


    def verify(self, image: Path, *extra: str, label: str = "verify") -> dict[str, Any]:
        """uringcr verify --json of @image: restored into uringcr, dumped again and
        compared; fails the test with the differences unless there are none."""
        finished = self.run("verify", image, "--json", *extra, label=label)
        if finished.returncode not in (UCR_OK, UCR_FAILED) or not any(
                line.startswith("{") for line in finished.lines):
            pytest.fail(f"uringcr verify failed\n{finished.describe()}", pytrace=False)
        verified = self.json_of(finished)
        if finished.returncode != UCR_OK or not verified["equal"]:
            pytest.fail("the restored ring does not dump equal to the image:\n  " +
                        "\n  ".join(verified["differences"]), pytrace=False)
        return verified


def record_stats(record_property: Any, report: dict[str, Any]) -> None:
    """CRIU-style figures of one dump, kept with the test's result: the harness
    report prints them and summary.json carries them ("checkpoint")."""
    record_property("checkpoint", json.dumps(report.get("stats", {})))


def record_restore(record_property: Any, verified: dict[str, Any]) -> None:
    """The restore's figures (uringcr verify), kept with the test's result for the
    harness report and summary.json ("restore")."""
    rings = verified["rings"]
    record_property("restore", json.dumps({
        "equal": verified["equal"],
        "restore_us": sum(r["restore_us"] for r in rings),
        "replay_us": sum(r["replay_us"] for r in rings),
        "nops": sum(r["nops"] for r in rings),
        "drops": sum(r["drops"] for r in rings),
        "msgs": sum(r["msgs"] for r in rings),
        "pers_calls": sum(r["pers_calls"] for r in rings),
    }))


def results(text: str) -> list[str]:
    """The "result" lines a scenario's continuation printed."""
    return [line for line in text.splitlines() if line.startswith("result ")]


def resume(helpers: Helpers, name: str, *args: str, label: str) -> Finished:
    """A scenario's resume mode, in a new process; fails the test unless it passed."""
    finished = helpers.command(helpers.argv(name, list(args)), label=label)
    result = finished.result
    if finished.returncode != 0 or result is None or result.group("ok") != "ok":
        pytest.fail(f"{name} {' '.join(args)} exited {finished.returncode}\n"
                    f"{finished.describe()}", pytrace=False)
    return finished


def dump_verify(helpers: Helpers, ucr: Uringcr, owner: Owner, image: Path,
                record_property: Any) -> dict[str, Any]:
    """Dumps the owner into image and verifies it (equality), both recorded."""
    _, report = ucr.dump(owner, image)
    record_stats(record_property, report)
    verified = ucr.verify(image)
    record_restore(record_property, verified)
    return verified


def fdinfo(pid: int, fd: int) -> dict[str, str]:
    """The "Key:\tvalue" lines of /proc/PID/fdinfo/FD (the first of each key)."""
    found: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep and key and not key.startswith(" ") and key not in found:
            found[key] = value.strip()
    return found


def ring_maps(pid: int, ino: int) -> list[tuple[int, int, int]]:
    """(start, end, pgoff) of the process's mappings of the ring with inode @ino."""
    found = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and int(parts[4]) == ino and "io_uring" in parts[5]:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            found.append((start, end, int(parts[2], 16)))
    return found


def pagemap_pfns(pid: int, addr: int, length: int) -> list[int]:
    """The PFN of every page under [addr, addr+length) (0: not present)."""
    first, last = addr >> 12, (addr + length - 1) >> 12
    pfns = []
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(first * 8)
        data = f.read((last - first + 1) * 8)
    for i in range(last - first + 1):
        entry = int.from_bytes(data[i * 8:i * 8 + 8], "little")
        pfns.append(entry & ((1 << 55) - 1) if entry >> 63 else 0)
    return pfns


def bvec_pfns(buf: dict[str, Any]) -> list[int]:
    """The pages the image's bvecs pin, in order (the same expansion uringcr uses)."""
    pfns = []
    for pfn, length, offset in buf["bvecs"]:
        for page in range(offset >> 12, ((offset + length - 1) >> 12) + 1):
            pfns.append(pfn + page)
    return pfns


def owner_of(helpers: Helpers, owners: list[Owner], name: str, *args: str,
             label: str | None = None) -> Owner:
    """start_owner(), with the owner in @owners (fixture `owners` kills what is left)."""
    owner = start_owner(helpers, name, *args, label=label)
    owners.append(owner)
    return owner


def the_ring(image: dict[str, Any], fd: int) -> dict[str, Any]:
    rings = [r for r in image["rings"] if r["fd"] == fd]
    assert len(rings) == 1, f"the image has {len(rings)} rings at fd {fd}: {image['rings']}"
    return rings[0]
