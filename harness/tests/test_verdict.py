from pathlib import Path

from harness.guest import Suite
from harness.protocol import GuestResult
from harness.logscan import Finding, Kind, ScanResult
from harness.logscan import TestWindow as Window
from harness.results import Status
from harness.verdict import judge_boot
from harness.vm import VmOutcome, VmStatus

MAIN = Suite(name="guest", selection=(".",))
DET = Suite(name="detectors-x", selection=("detectors/test_x.py",), detector_selftest=True)


def vm(status: VmStatus = VmStatus.COMPLETED, code: int | None = 0) -> VmOutcome:
    return VmOutcome(status=status, exit_code=code, console_log=Path("c.log"), seconds=1.0,
                     boot_seconds=1.0, detail="d")


def window(nodeid: str, *, end: int | None = 10, debug_locks: bool | None = True,
           expected: list[Kind] | None = None, outcome: str | None = "passed") -> Window:
    return Window(nodeid=nodeid, begin_line=1, end_line=end, outcome=outcome,
                      debug_locks=debug_locks, expected=expected or [], timed_out=False)


def finding(kind: Kind, title: str, test: str | None) -> Finding:
    return Finding(kind=kind, title=title, excerpt=title, first_line=5, last_line=6, test=test)


def scan(windows: list[Window], findings: list[Finding]) -> ScanResult:
    return ScanResult(findings=findings, tests={w.nodeid: w for w in windows},
                      lockdep_off_line=None)


def passed(nodeid: str) -> GuestResult:
    return GuestResult(nodeid=nodeid, outcome="passed", message="", seconds=0.1)


def by_name(results):  # type: ignore[no-untyped-def]
    return {r.name: r for r in results}


def test_clean_pass() -> None:
    res, rec = judge_boot(MAIN, [passed("t.py::a")], scan([window("t.py::a")], []), vm())
    assert [r.status for r in res] == [Status.PASS] and rec == []


def test_finding_fails_a_test_pytest_passed() -> None:
    res, rec = judge_boot(MAIN, [passed("t.py::a")],
                          scan([window("t.py::a")],
                               [finding(Kind.LOCKDEP, "possible deadlock in f", "t.py::a")]),
                          vm())
    r = by_name(res)["t.py::a"]
    assert r.status is Status.FAIL and "possible deadlock in f" in r.message
    assert not rec[0].expected


def test_lockdep_off_makes_a_pass_inconclusive() -> None:
    res, _ = judge_boot(MAIN, [passed("t.py::a")], scan([window("t.py::a", debug_locks=False)],
                                                        []), vm())
    assert by_name(res)["t.py::a"].status is Status.INCONCLUSIVE


def test_expected_finding_passes_only_when_reported() -> None:
    w = window("d.py::warn", expected=[Kind.WARNING])
    ok, rec = judge_boot(DET, [passed("d.py::warn")],
                         scan([w], [finding(Kind.WARNING, "WARNING in lkdtm", "d.py::warn")]),
                         vm())
    assert by_name(ok)["d.py::warn"].status is Status.PASS and rec[0].expected
    bad, _ = judge_boot(DET, [passed("d.py::warn")], scan([w], []), vm())
    assert by_name(bad)["d.py::warn"].status is Status.FAIL
    assert "expected WARNING" in by_name(bad)["d.py::warn"].message


def test_expected_panic_excuses_the_dead_vm() -> None:
    w = window("d.py::panic", end=None, expected=[Kind.PANIC], outcome=None)
    res, _ = judge_boot(DET, [], scan([w], [finding(Kind.PANIC, "kernel panic: x",
                                                    "d.py::panic")]),
                        vm(VmStatus.PANIC, 255))
    assert [r.status for r in res] == [Status.PASS]


def test_unexpected_panic_crashes_the_running_test_and_the_vm() -> None:
    w = window("t.py::a", end=None, outcome=None)
    res, _ = judge_boot(MAIN, [], scan([w], [finding(Kind.PANIC, "kernel panic: x", "t.py::a")]),
                        vm(VmStatus.PANIC, 255))
    names = by_name(res)
    assert names["t.py::a"].status is Status.FAIL
    assert names["<vm>"].status is Status.CRASHED


def test_test_that_never_ended_is_crashed() -> None:
    res, _ = judge_boot(MAIN, [], scan([window("t.py::a", end=None, outcome=None)], []),
                        vm(VmStatus.HANG, None))
    assert by_name(res)["t.py::a"].status is Status.CRASHED
    assert by_name(res)["<vm>"].status is Status.CRASHED


def test_findings_outside_tests_fail_the_boot() -> None:
    res, _ = judge_boot(MAIN, [passed("t.py::a")],
                        scan([window("t.py::a")], [finding(Kind.WARNING, "WARNING in boot", None)]),
                        vm())
    assert by_name(res)["<outside tests>"].status is Status.FAIL


def test_detector_repeats_after_the_test_are_not_new_findings() -> None:
    w = window("d.py::hung", expected=[Kind.HUNG_TASK])
    f1 = finding(Kind.HUNG_TASK, "INFO: task hung in lkdtm", "d.py::hung")
    f2 = finding(Kind.HUNG_TASK, "INFO: task hung in lkdtm", None)
    res, rec = judge_boot(DET, [passed("d.py::hung")], scan([w], [f1, f2]), vm())
    assert [r.status for r in res] == [Status.PASS]
    assert all(r.expected for r in rec)


def test_lost_vm_is_an_infrastructure_error() -> None:
    res, _ = judge_boot(MAIN, [passed("t.py::a")], scan([window("t.py::a")], []),
                        vm(VmStatus.LOST, 255))
    assert by_name(res)["<vm>"].status is Status.ERROR


def test_pytest_error_exit_without_failures_is_reported() -> None:
    res, _ = judge_boot(MAIN, [passed("t.py::a")], scan([window("t.py::a")], []), vm(code=4))
    assert by_name(res)["<pytest>"].status is Status.FAIL


def test_no_tests_at_all_fails() -> None:
    res, _ = judge_boot(MAIN, [], scan([], []), vm())
    assert by_name(res)["<no tests>"].status is Status.FAIL


def test_collateral_reports_of_a_provoked_crash_are_expected() -> None:
    w = window("d.py::spin", expected=[Kind.LOCKDEP])
    res, rec = judge_boot(DET, [passed("d.py::spin")], scan([w], [
        finding(Kind.LOCKDEP, "lock held when returning to user space in f", "d.py::spin"),
        finding(Kind.BUG, "BUG: scheduling while atomic in g", "d.py::spin")]), vm())
    assert [r.status for r in res] == [Status.PASS]
    assert all(r.expected for r in rec)


def test_scenario_outcome_counts_reach_the_result() -> None:
    case = GuestResult(nodeid="t.py::a", outcome="passed", message="", seconds=1.0,
                       properties={"outcomes": '{"ok": 40, "edeadlk": 12, "failed": 0}'})
    res, _ = judge_boot(MAIN, [case], scan([window("t.py::a")], []), vm())
    assert res[0].outcomes == {"ok": 40, "edeadlk": 12, "failed": 0}


def test_sub_scenario_counts_reach_the_report() -> None:
    from harness.report import terminal_summary
    from harness.results import RunResult
    scenarios = ('{"abba-inline": {"ok": 1235, "edeadlk": 1165, "failed": 0, "rounds": 300,'
                 ' "ms": 4248}, "abba-read2": {"ok": 3, "edeadlk": 1, "failed": 0}}')
    case = GuestResult(nodeid="t.py::abba", outcome="passed", message="", seconds=1.0,
                       properties={"outcomes": '{"ok": 1238, "edeadlk": 1166, "failed": 0}',
                                   "scenarios": scenarios})
    res, _ = judge_boot(MAIN, [case], scan([window("t.py::abba")], []), vm())
    assert res[0].scenarios["abba-inline"]["rounds"] == 300
    run = RunResult(results_dir="r")
    run.tests += res
    text = terminal_summary(run)
    assert "abba-inline: 300 rounds ok=1235 edeadlk=1165 failed=0 in 4.2s" in text
    assert "abba-read2: ok=3 edeadlk=1 failed=0\n" in text


def test_expected_title_must_match_not_just_the_kind() -> None:
    # the negative control: a circular report where recursive locking was due
    w = window("n.py::self", expected=[Kind.LOCKDEP])
    w.expected_titles.append((Kind.LOCKDEP, "possible recursive locking"))
    neg = Suite(name="negative-self-read", selection=("negative/n.py",),
                detector_selftest=True, variant="negative")
    wrong, _ = judge_boot(neg, [passed("n.py::self")],
                          scan([w], [finding(Kind.LOCKDEP, "possible deadlock in f", "n.py::self")]),
                          vm())
    r = by_name(wrong)["n.py::self"]
    assert r.status is Status.FAIL and "titled 'possible recursive locking" in r.message
    right, rec = judge_boot(
        neg, [passed("n.py::self")],
        scan([w], [finding(Kind.LOCKDEP, "possible recursive locking in io_buf_iter_seq_start",
                           "n.py::self")]), vm())
    assert by_name(right)["n.py::self"].status is Status.PASS and rec[0].expected


def test_reproduce_rounds_keep_the_round_that_failed() -> None:
    rounds = [GuestResult(nodeid="t.py::a", outcome="passed", seconds=1, round=1),
              GuestResult(nodeid="t.py::a", outcome="failed", seconds=1, round=2,
                          message="boom"),
              GuestResult(nodeid="t.py::a", outcome="passed", seconds=1, round=3)]
    res, _ = judge_boot(MAIN, rounds, scan([window("t.py::a")], []), vm())
    assert [(r.status, r.message) for r in res] == [(Status.FAIL, "boom")]


def test_exact_nodeids_meet_their_mangled_windows() -> None:
    res, _ = judge_boot(MAIN, [passed("t.py::a[x y]")], scan([window("t.py::a[x_y]")], []), vm())
    assert [(r.name, r.status) for r in res] == [("t.py::a[x_y]", Status.PASS)]


def test_checkpoint_figures_reach_the_report_and_summary() -> None:
    from harness.report import terminal_summary
    from harness.results import RunResult
    figures = ('{"freezing_time_us": 17572, "frozen_time_us": 384875, "drain_time_us": 8129,'
               ' "dump_time_us": 1085113, "bytes_written": 5364463, "pages_written": 1309,'
               ' "edeadlk_retries": 2}')
    case = GuestResult(nodeid="test_uringcr.py::test_dump_buffers", outcome="passed", message="",
                       seconds=3.0, properties={"checkpoint": figures})
    res, _ = judge_boot(MAIN, [case], scan([window("test_uringcr.py::test_dump_buffers")], []),
                        vm())
    assert res[0].checkpoint["pages_written"] == 1309
    run = RunResult(results_dir="r")
    run.tests += res
    text = terminal_summary(run)
    assert ("checkpoint    test_uringcr.py::test_dump_buffers: freezing 17.6 ms, frozen 384.9 ms,"
            " dump 1085.1 ms, 5364463 bytes, 1309 pages, 2 EDEADLK retries -> pass") in text
    assert run.to_json()["tests"][0]["checkpoint"]["frozen_time_us"] == 384875


def test_unparsable_checkpoint_figures_say_so() -> None:
    case = GuestResult(nodeid="t.py::c", outcome="passed", message="", seconds=1.0,
                       properties={"checkpoint": "{not json"})
    res, _ = judge_boot(MAIN, [case], scan([window("t.py::c")], []), vm())
    assert res[0].checkpoint == {"unparsable": 1}


def test_restore_figures_reach_the_report_and_summary() -> None:
    from harness.report import terminal_summary
    from harness.results import RunResult
    figures = ('{"equal": true, "restore_us": 23456, "replay_us": 12000, "nops": 1005,'
               ' "drops": 0, "msgs": 2, "pers_calls": 7}')
    name = "test_uringcr_restore.py::test_restore_pending[plain]"
    case = GuestResult(nodeid=name, outcome="passed", message="", seconds=3.0,
                       properties={"restore": figures})
    res, _ = judge_boot(MAIN, [case], scan([window(name)], []), vm())
    assert res[0].restore == {"equal": 1, "restore_us": 23456, "replay_us": 12000,
                              "nops": 1005, "drops": 0, "msgs": 2, "pers_calls": 7}
    run = RunResult(results_dir="r")
    run.tests += res
    assert (f"restore       {name}: 23.5 ms, 1005 NOPs replayed in 12.0 ms, 0 SQ drops,"
            " 2 MSG_RING posts, 7 personality calls, equal -> pass") in terminal_summary(run)
    assert run.to_json()["tests"][0]["restore"]["nops"] == 1005
    bad = GuestResult(nodeid="t.py::r", outcome="passed", message="", seconds=1.0,
                      properties={"restore": "{not json"})
    res, _ = judge_boot(MAIN, [bad], scan([window("t.py::r")], []), vm())
    assert res[0].restore == {"unparsable": 1}
