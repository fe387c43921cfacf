"""The protocol is one definition: host scanner, VM watcher and guest plugin agree."""

from pathlib import Path

import pytest

from harness import protocol
from harness.logscan import Kind, _split_lines, scan_console
from harness.vm import Accel, TIMEOUT_SCALE

FIXTURES = sorted((Path(__file__).parent / "data" / "logscan").glob("*.log"))


def test_finding_kinds_are_the_scanners_kinds() -> None:
    assert set(protocol.FINDING_KINDS) | {protocol.TIMEOUT_KIND} == {k.value for k in Kind}


def test_markers_format_and_parse_back() -> None:
    line = "[   12.5] " + protocol.PREFIX + protocol.begin("t.py::a[x y]", 480)
    m = protocol.parse_marker(line)
    assert m is not None and (m.verb, m.nodeid) == ("BEGIN", "t.py::a[x_y]")
    assert protocol.marker_budget(m) == 480
    end = protocol.parse_marker(protocol.PREFIX + protocol.end("t.py::a[x y]", "passed", "1"))
    assert end is not None and end.fields == {"outcome": "passed", "debug_locks": "1"}
    exp = protocol.parse_marker(protocol.PREFIX + protocol.expect(
        "t.py::b", "LOCKDEP", "possible  recursive\tlocking"))
    assert exp is not None and exp.rest == "LOCKDEP possible recursive locking"
    assert protocol.ROUND.search(protocol.PREFIX + protocol.round_start(3))
    done = protocol.REPRO_DONE.search(protocol.PREFIX + protocol.repro_done(2, "a test failed"))
    assert done is not None and done["rounds"] == "2" and done["why"] == "a test failed"


def test_console_patterns_see_the_same_markers() -> None:
    raw = (protocol.PREFIX + protocol.begin("t.py::a", 96.5) + "\r\r\n").encode()
    m = protocol.CONSOLE_BEGIN.search(raw)
    assert m is not None and m.group(1) == b"t.py::a"
    assert protocol.console_budget(m.group(2)) == 96.5
    # a line not yet complete does not match: its nodeid may still be cut
    assert protocol.CONSOLE_BEGIN.search(raw[:-3]) is None


def test_budget_and_host_deadline() -> None:
    tcg = TIMEOUT_SCALE[Accel.TCG]
    budget = protocol.budget_for(90, timeout_scale=tcg, stress_scale=3)
    assert budget == 90 * tcg * 3
    # the host always waits longer than the guest's watchdog
    assert protocol.window_deadline(budget, tcg) > budget
    assert protocol.window_deadline(None, 1.0) == protocol.DEFAULT_BUDGET_S + protocol.HOST_GRACE_S
    # a stress scale below 1 never shortens a budget
    assert protocol.budget_for(None, stress_scale=0.5) == protocol.DEFAULT_BUDGET_S


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_report_start_matches_report_headers_only(path: Path) -> None:
    """On real recorded logs: every line that starts a report the scanner
    finds is one where the guest's reproduce loop stops, and no other kernel
    line there stops it (a plain boot must not look like a finding)."""
    log = path.read_text(errors="replace").split("---\n", 1)[1]
    result = scan_console(log)
    starts = {f.first_line for f in result.findings if f.kind is not Kind.TIMEOUT}
    lines = {ln.num: ln for ln in _split_lines(log) if ln.kernel}
    stopping = {n for n, ln in lines.items() if protocol.starts_report(ln.text)}
    # a finding's first line may be its "[ cut here ]" or "=====" lead: the
    # header is within its first three lines
    for first in starts:
        assert any(n in stopping for n in range(first, first + 3)), (path.name, first)
    inside = {n for f in result.findings for n in range(f.first_line, f.last_line + 1)}
    assert not (stopping - inside), [lines[n].text for n in sorted(stopping - inside)][:5]


# Composed from lib/ubsan.c's format strings in 6.12 (ubsan_prologue,
# handle_out_of_bounds, ubsan_epilogue), not recorded: the test kernel's config
# has no CONFIG_UBSAN yet.
UBSAN_LOG = """\
[    5.000000] harness: BEGIN t.py::u budget=10
[    5.100000] ------------[ cut here ]------------
[    5.100001] UBSAN: array-index-out-of-bounds in drivers/misc/lkdtm/bugs.c:620:16
[    5.100002] index 8 is out of range for type 'char [8]'
[    5.100003] CPU: 1 UID: 0 PID: 212 Comm: sh Not tainted 6.12.117+ #1
[    5.100004] Call Trace:
[    5.100005]  <TASK>
[    5.100006]  dump_stack_lvl+0x5d/0x80
[    5.100007]  __ubsan_handle_out_of_bounds+0xb1/0xf0
[    5.100008]  lkdtm_ARRAY_BOUNDS+0x1a5/0x1f0
[    5.100009]  lkdtm_do_action+0x27/0x50
[    5.100010]  </TASK>
[    5.100011] ---[ end trace ]---
[    5.200000] harness: END t.py::u outcome=passed debug_locks=1
"""


def test_ubsan_reports_are_findings_and_stop_the_loop() -> None:
    (f,) = scan_console(UBSAN_LOG).findings
    assert f.kind is Kind.UBSAN and f.test == "t.py::u"
    assert f.title == "UBSAN: array-index-out-of-bounds in lkdtm_ARRAY_BOUNDS"
    assert f.excerpt.splitlines()[-1] == "---[ end trace ]---"
    assert protocol.starts_report("UBSAN: shift-out-of-bounds in kernel/x.c:1:2")
