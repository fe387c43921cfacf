"""Golden tests for harness.logscan on recorded console logs.

Each fixture harness/tests/data/logscan/<name>.log is a header, a line `---`,
then the console log exactly as recorded. The header has one block per
expected finding, in log order, blocks separated by a blank line:

    KIND: LOCKDEP
    TITLE: possible deadlock in io_foo
    TEST: detectors/test_lockdep.py::test_abba      (or: TEST: none)
    LINES: 120-188                                  (1-based, counted from the line after ---)

and, optionally, a block of whole-log facts checked the same way:

    LOCKDEP-OFF: 120                                (or: none)
    WINDOWS: 5                                      (number of test windows)

A header with no finding block means "this log has no finding".

To rewrite every header from what the scanner finds now (review the diff!):
    LOGSCAN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest harness/tests/test_logscan.py
    .venv/bin/python -m harness.tests.test_logscan --update-golden
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.logscan import Kind, ScanResult, findings_for, main, scan_console

DATA = Path(__file__).parent / "data" / "logscan"
FIXTURES = sorted(DATA.glob("*.log"))
SEPARATOR = "---"
PRINTK_TIME = re.compile(r"^\s*\[\s*\d+\.\d{6}\]")


@dataclass(frozen=True)
class Golden:
    findings: list[dict[str, str]]
    facts: dict[str, str]
    log: str


def parse_golden(path: Path) -> Golden:
    text = path.read_bytes().decode("utf-8", errors="replace")   # keeps \r\n as recorded
    head, sep, log = text.partition(f"\n{SEPARATOR}\n")
    if text.startswith(f"{SEPARATOR}\n"):
        head, sep, log = "", SEPARATOR, text[len(SEPARATOR) + 1:]
    assert sep, f"{path.name}: no '{SEPARATOR}' line ends the header"
    findings: list[dict[str, str]] = []
    facts: dict[str, str] = {}
    for block in head.strip().split("\n\n") if head.strip() else []:
        entry = dict(line.split(": ", 1) for line in block.strip().splitlines())
        if "KIND" in entry:
            findings.append(entry)
        else:
            facts.update(entry)
    return Golden(findings=findings, facts=facts, log=log)


def describe(result: ScanResult) -> tuple[list[dict[str, str]], dict[str, str]]:
    findings = [{"KIND": f.kind.value, "TITLE": f.title, "TEST": f.test or "none",
                 "LINES": f"{f.first_line}-{f.last_line}"} for f in result.findings]
    facts = {"LOCKDEP-OFF": str(result.lockdep_off_line or "none"), "WINDOWS": str(len(result.tests))}
    return findings, facts


def render_header(findings: list[dict[str, str]], facts: dict[str, str]) -> str:
    blocks = ["\n".join(f"{k}: {v}" for k, v in entry.items()) for entry in [*findings, facts]]
    return "\n\n".join(blocks) + f"\n{SEPARATOR}\n"


def update_golden(path: Path) -> None:
    golden = parse_golden(path)
    findings, facts = describe(scan_console(golden.log))
    path.write_bytes((render_header(findings, facts) + golden.log).encode("utf-8"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_golden(path: Path) -> None:
    if os.environ.get("LOGSCAN_UPDATE_GOLDEN"):
        update_golden(path)
    golden = parse_golden(path)
    findings, facts = describe(scan_console(golden.log))
    assert findings == golden.findings
    for key, want in golden.facts.items():
        assert facts[key] == want, key


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 5


# ---- properties every recorded log must have --------------------------------

def kernel_text(raw: str) -> str:
    """A console line as the excerpt shows it: no \r, no printk prefix, no trailing blanks."""
    raw = raw.replace("\r", "")
    m = re.search(r"\[\s*\d+\.\d{6}\] ?", raw)
    return (raw[m.end():] if m else raw).rstrip()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_excerpts_are_clean_and_bounded(path: Path) -> None:
    log = parse_golden(path).log
    raw = log.split("\n")
    result = scan_console(log)
    for f in result.findings:
        lines = f.excerpt.splitlines()
        assert 1 <= len(lines) <= 80
        assert f.first_line <= f.last_line
        assert lines[0] == kernel_text(raw[f.first_line - 1])
        assert lines[-1] == kernel_text(raw[f.last_line - 1])
        if f.kind is Kind.LOCKDEP:      # the lock names are in the excerpt
            assert re.search(r"\(\S+\)\{[-+.?]+\}-\{\d:\d\}", f.excerpt)
        assert not any("\r" in x or "\x1b" in x for x in lines)
        assert not any(PRINTK_TIME.match(x) for x in lines)
        assert not re.search(r"\+0x|\b[0-9a-f]{12,}\b|\[\s*\d+\.\d+\]", f.title)   # no offsets, addresses, times


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_crlf_and_ansi_do_not_change_the_result(path: Path) -> None:
    log = parse_golden(path).log
    plain = describe(scan_console(log))
    noisy = "\n".join(f"\x1b[0m{line}\r" for line in log.split("\n"))
    assert describe(scan_console(noisy)) == plain


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_findings_for_partitions_findings(path: Path) -> None:
    result = scan_console(parse_golden(path).log)
    owned = [f for t in result.tests for f in findings_for(result, t)]
    loose = [f for f in result.findings if f.test is None]
    assert sorted(map(id, owned + loose)) == sorted(map(id, result.findings))
    for f in owned:
        assert f.test is not None
        win = result.tests[f.test]
        assert win.begin_line < f.first_line
        assert win.end_line is None or f.first_line < win.end_line


# ---- logs with no kernel text: the marker protocol alone ---------------------
# These lines are the guest runner's own protocol (guest-tests/guest_runner.py),
# not kernel output, so writing them here is not inventing a kernel log.

def test_empty_log() -> None:
    for text in ("", "\n", "\r\n\r\n"):
        result = scan_console(text)
        assert (result.findings, result.tests, result.lockdep_off_line) == ([], {}, None)


def test_log_without_markers_or_timestamps() -> None:
    text = "Script started on 2026-11-24\nvirtme: waiting for virtiofsd to start\nBooting the kernel.\n"
    result = scan_console(text)
    assert (result.findings, result.tests) == ([], {})


MARKERS_ONLY = """\
[   10.000001] harness: BEGIN a/test_a.py::test_one
[   10.000002] harness: EXPECT a/test_a.py::test_one LOCKDEP
[   10.000003] harness: EXPECT a/test_a.py::test_one NO_SUCH_KIND
[   10.000004] harness: END a/test_a.py::test_one outcome=failed debug_locks=0
pytest output [   11.000001] harness: BEGIN a/test_a.py::test_two[x_y]
[   11.000002] harness: EXPECT a/test_a.py::test_two[x_y] TIMEOUT
[   41.000003] harness: TIMEOUT a/test_a.py::test_two[x_y] after=30
[   42.000001] harness: END a/test_b.py::test_orphan outcome=passed debug_locks=na
[   43.000001] harness: BEGIN a/test_a.py::test_one
harness: BEGIN not/a/kernel/line.py::test
"""


def test_marker_protocol() -> None:
    result = scan_console(MARKERS_ONLY.replace("\n", "\r\r\n"))
    assert list(result.tests) == ["a/test_a.py::test_two[x_y]", "a/test_b.py::test_orphan",
                                  "a/test_a.py::test_one"]
    two = result.tests["a/test_a.py::test_two[x_y]"]
    assert (two.begin_line, two.end_line, two.outcome, two.debug_locks) == (5, None, None, None)
    assert two.timed_out and two.expected == [Kind.TIMEOUT]
    orphan = result.tests["a/test_b.py::test_orphan"]
    assert (orphan.begin_line, orphan.end_line, orphan.outcome, orphan.debug_locks) == (8, 8, "passed", None)
    rerun = result.tests["a/test_a.py::test_one"]       # a second BEGIN starts a fresh window
    assert (rerun.begin_line, rerun.end_line, rerun.expected) == (9, None, [])
    [hang] = result.findings
    assert (hang.kind, hang.title, hang.test, hang.first_line, hang.last_line) == (
        Kind.TIMEOUT, "hang: a/test_a.py::test_two[x_y] timed out after 30s", "a/test_a.py::test_two[x_y]", 7, 7)
    assert findings_for(result, "a/test_a.py::test_two[x_y]") == [hang]
    assert findings_for(result, "a/test_a.py::test_one") == []


def test_first_window_fields() -> None:
    result = scan_console(MARKERS_ONLY.split("pytest output")[0])
    one = result.tests["a/test_a.py::test_one"]
    assert (one.begin_line, one.end_line, one.outcome, one.debug_locks, one.expected, one.timed_out) == (
        1, 4, "failed", False, [Kind.LOCKDEP], False)


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    path = FIXTURES[0]
    assert main([str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"findings", "tests", "lockdep_off_line"}
    assert all(f["kind"] in {k.value for k in Kind} for f in out["findings"])


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-golden"]:
        sys.exit("usage: python -m harness.tests.test_logscan --update-golden")
    for fixture in FIXTURES:
        update_golden(fixture)
        print(f"updated {fixture.relative_to(Path.cwd()) if fixture.is_relative_to(Path.cwd()) else fixture}")


def test_expect_marker_with_a_title() -> None:
    text = ("[    1.000001] harness: BEGIN n/test_n.py::test_self\n"
            "[    1.000002] harness: EXPECT n/test_n.py::test_self LOCKDEP possible recursive locking\n"
            "[    1.000003] harness: EXPECT n/test_n.py::test_self LOCKDEP\n")
    window = scan_console(text).tests["n/test_n.py::test_self"]
    assert window.expected == [Kind.LOCKDEP]
    assert window.expected_titles == [(Kind.LOCKDEP, "possible recursive locking")]
