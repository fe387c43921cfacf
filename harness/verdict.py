"""Judge one boot: the guest's JUnit, the console findings and the VM outcome.

A test passes only when pytest passed it, no finding is attributed to it
and lockdep was still armed when it ended.  A test that declares expected
findings (the detector self-test) passes only when each expected kind was
reported while it ran.  Findings outside every test, and a VM that did not
end cleanly, fail the boot as pseudo-tests so nothing is silently dropped.
"""

from __future__ import annotations

import json

from .guest import Suite
from .logscan import Finding, Kind, ScanResult
from .protocol import GuestResult
from .results import FindingRecord, Status, TestResult
from .vm import VmOutcome, VmStatus

# Kinds that end or wreck a boot: a test expecting one may leave the VM dead.
FATAL_KINDS = {Kind.PANIC}


def _dedup(findings: list[Finding]) -> list[tuple[Finding, int]]:
    """One entry per (kind, title, test), with how many repeats were folded in."""
    first: dict[tuple[str, str, str | None], Finding] = {}
    repeats: dict[tuple[str, str, str | None], int] = {}
    for f in findings:
        key = (f.kind.value, f.title, f.test)
        if key in first:
            repeats[key] += 1
        else:
            first[key] = f
            repeats[key] = 0
    return [(f, repeats[key]) for key, f in first.items()]


def _json_property(case: GuestResult | None, name: str) -> object:
    """A property a test recorded (record_property) as JSON text or as a value;
    None when absent, "" when unparsable."""
    if case is None or name not in case.properties:
        return None
    value = case.properties[name]
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return ""


def _counts(data: object) -> dict[str, int]:
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, (int, float))}


def outcome_counts(case: GuestResult | None) -> dict[str, int]:
    """The "outcomes" property a scenario recorded: a JSON object of counts."""
    data = _json_property(case, "outcomes")
    return {"unparsable": 1} if data == "" else _counts(data)


def scenario_counts(case: GuestResult | None) -> dict[str, dict[str, int]]:
    """The "scenarios" property: {scenario: {count name: number}}."""
    data = _json_property(case, "scenarios")
    if not isinstance(data, dict):
        return {}
    return {str(k): _counts(v) for k, v in data.items() if isinstance(v, dict)}


def checkpoint_figures(case: GuestResult | None) -> dict[str, int]:
    """The "checkpoint" property: uringcr's dump statistics (freezing_time_us, ...)."""
    data = _json_property(case, "checkpoint")
    return {"unparsable": 1} if data == "" else _counts(data)


def restore_figures(case: GuestResult | None) -> dict[str, int]:
    """The "restore" property: the restore's time, NOPs replayed, equality (0/1)."""
    data = _json_property(case, "restore")
    return {"unparsable": 1} if data == "" else _counts(data)


def _last_or_failed(records: list[GuestResult]) -> dict[str, GuestResult]:
    """One record per test (by its marker id): the last round's, or the first
    round in which it did not pass (reproduce mode runs tests in rounds)."""
    out: dict[str, GuestResult] = {}
    for r in records:
        prev = out.get(r.marker_id)
        if prev is None or prev.outcome in ("passed", "skipped"):
            out[r.marker_id] = r
    return out


def judge_boot(suite: Suite, guest_results: list[GuestResult], scan: ScanResult, vm: VmOutcome
               ) -> tuple[list[TestResult], list[FindingRecord]]:
    by_id = _last_or_failed(guest_results)
    names: list[str] = list(scan.tests)
    names += [k for k in by_id if k not in scan.tests]
    deduped = _dedup(scan.findings)
    titles_in_tests = {(f.kind, f.title) for f, _ in deduped if f.test is not None}
    records: list[FindingRecord] = []
    results: list[TestResult] = []
    expected_fatal_seen = False

    for name in names:
        window = scan.tests.get(name)
        case = by_id.get(name)
        mine = [(f, n) for f, n in deduped if f.test == name]
        expected = list(window.expected) if window else []
        kinds_found = {f.kind for f, _ in mine}
        for f, n in mine:
            records.append(FindingRecord(kind=f.kind.value, title=f.title, suite=suite.name,
                                         test=name, excerpt=f.excerpt,
                                         console_lines=(f.first_line, f.last_line),
                                         # a provoked crash drags collateral reports
                                         # along (lockdep's SPINLOCKUP: scheduling
                                         # while atomic); they belong to the provocation
                                         expected=f.kind in expected or (
                                             suite.detector_selftest and bool(expected)),
                                         duplicates=n))
        titles = [f.title for f, _ in mine]
        seconds = case.seconds if case else 0.0
        status: Status
        if expected:
            missing = [k.value for k in expected if k not in kinds_found]
            missing += [f"{k.value} titled '{words}...'" for k, words in
                        (window.expected_titles if window else [])
                        if k in kinds_found and not any(
                            f.kind is k and f.title.lower().startswith(words.lower())
                            for f, _ in mine)]
            if missing:
                status = Status.FAIL
                message = (f"expected {', '.join(missing)} to be reported, the log scan saw "
                           + (", ".join(titles) if titles else "nothing"))
            else:
                status = Status.PASS
                message = "reported as expected: " + "; ".join(
                    f.title for f, _ in mine if f.kind in expected)
                if any(k in FATAL_KINDS for k in expected):
                    expected_fatal_seen = True
        elif mine:
            status = Status.FAIL
            message = "kernel reported: " + "; ".join(titles)
        elif case is not None and case.outcome in ("failed", "error"):
            status = Status.FAIL
            message = case.message
        elif case is not None and case.outcome == "skipped":
            status = Status.SKIP
            message = case.message
        elif case is None and (window is None or window.end_line is None):
            status = Status.CRASHED
            message = f"never finished: {vm.status.value}: {vm.detail}".rstrip(": ")
        elif window is not None and window.debug_locks is False:
            status = Status.INCONCLUSIVE
            message = ("lockdep was switched off when this test ended (an earlier report "
                       "disarmed it), so a locking bug here would have gone unreported")
        else:
            status = Status.PASS
            message = ""
        results.append(TestResult(suite=suite.name, name=name, status=status, message=message,
                                  seconds=seconds, findings=titles,
                                  expected=[k.value for k in expected],
                                  outcomes=outcome_counts(case),
                                  scenarios=scenario_counts(case),
                                  checkpoint=checkpoint_figures(case),
                                  restore=restore_figures(case)))

    outside = [(f, n) for f, n in deduped if f.test is None]
    stray = []
    for f, n in outside:
        repeat = suite.detector_selftest and (f.kind, f.title) in titles_in_tests
        records.append(FindingRecord(kind=f.kind.value, title=f.title, suite=suite.name,
                                     test=None, excerpt=f.excerpt,
                                     console_lines=(f.first_line, f.last_line),
                                     expected=repeat, duplicates=n))
        if not repeat:
            stray.append(f.title)
    if stray:
        results.append(TestResult(suite=suite.name, name="<outside tests>", status=Status.FAIL,
                                  message="kernel reported outside any test: " + "; ".join(stray),
                                  findings=stray))

    vm_ok = vm.status is VmStatus.COMPLETED or (vm.status is VmStatus.PANIC
                                                 and expected_fatal_seen)
    if not vm_ok:
        status = Status.ERROR if vm.status in (VmStatus.LOST, VmStatus.BOOT_FAILURE) \
            else Status.CRASHED
        results.append(TestResult(suite=suite.name, name="<vm>", status=status,
                                  message=f"{vm.status.value}: {vm.detail}",
                                  seconds=vm.seconds))
    elif vm.status is VmStatus.COMPLETED and vm.exit_code not in (0, None) \
            and all(r.status.ok for r in results) and not suite.detector_selftest:
        results.append(TestResult(suite=suite.name, name="<pytest>", status=Status.FAIL,
                                  message=f"pytest in the guest exited with {vm.exit_code} "
                                          f"(collection or usage error? see "
                                          f"{suite.name}.pytest.log)"))
    if not guest_results and not scan.tests and vm_ok:
        results.append(TestResult(suite=suite.name, name="<no tests>", status=Status.FAIL,
                                  message="the guest ran no test"))
    return results, records
