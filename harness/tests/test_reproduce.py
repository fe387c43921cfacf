"""harness.reproduce on recorded reproduce-mode consoles (the negative control's boots)."""

from pathlib import Path

from harness.logscan import scan_console
from harness.reproduce import round_of, round_starts, summarize

DATA = Path(__file__).parent / "data" / "logscan"


def recorded(name: str) -> str:
    # the fixture's header ends at the first '---' line; the log follows as recorded
    text = (DATA / name).read_bytes().decode(errors="replace")
    return text.split("\n---\n", 1)[1]


def test_recorded_negative_boots_stop_in_round_one_with_their_report() -> None:
    for name, title in (("negative-circular.log", "LOCKDEP: possible deadlock in bpf_seq_read"),
                        ("negative-recursive.log",
                         "LOCKDEP: possible recursive locking in io_buf_iter_seq_start")):
        console = recorded(name)
        s = summarize(console, scan_console(console), tests=("t",), requested=3, seconds=99.0)
        assert (s.rounds, s.finding_round, s.finding) == (1, 1, title), name
        assert s.stopped.startswith("kernel report: WARNING: possible")
        assert s.seconds < 10          # from the markers' kernel timestamps, not the fallback
        assert s.line().startswith("reproduce: t: first finding in round 1 of 3 after ")


def test_rounds_are_counted_on_the_scan_line_numbers() -> None:
    console = "a\r\r\nharness: ROUND 1\r\r\nb\r\r\nharness: ROUND 2\r\r\n"
    assert round_starts(console) == [(1, 2), (2, 4)]
    assert [round_of(n, round_starts(console)) for n in (1, 2, 3, 4, 9)] == [None, 1, 1, 2, 2]


def test_no_markers_means_no_rounds_and_the_vm_detail() -> None:
    s = summarize("boot noise\n", scan_console("boot noise\n"), tests=("t",), requested=0,
                  seconds=12.0, vm_detail="hang: no progress for 240s")
    assert (s.rounds, s.finding, s.stopped) == (0, None, "hang: no progress for 240s")
    assert s.line() == "reproduce: t: no finding in 0 round(s) (12s; hang: no progress for 240s)"


def test_a_vm_that_hung_in_a_round_is_the_finding() -> None:
    console = "harness: ROUND 1\nharness: ROUND 2\n"
    s = summarize(console, scan_console(console), tests=("t",), requested=0, seconds=300.0,
                  vm_detail="hang: no progress", vm_problem="hang: no progress for 240s")
    assert (s.finding_round, s.finding) == (2, "VM hang: no progress for 240s")
