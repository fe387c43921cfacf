"""The kernel series' own BPF selftests, run without test_progs.

The host builds tools/testing/selftests/bpf/prog_tests/<test>.c of the
kernel tree with the progs it loads and a minimal runner (series/, see
series_results.py). Here every subtest becomes one pytest test that runs the
runner for that subtest alone, so a kernel report in the console lands on
the subtest that caused it; test_whole then runs each test function with all
its subtests in one process, as test_progs would, since the subtests share
rings and state.

Without the series (no KSRC given to make, or a tree without the tests)
these skip; a failed build fails them with the build log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bounded import Finished, run_bounded
from guest_runner import Settings
from hugepages import reserved_hugetlb
from series_results import BuildState, Outcome, RunnerOutput, SeriesBuild, parse_runner_output

SETTINGS = Settings.from_env(os.environ)
SERIES = SeriesBuild.load(SETTINGS.guest_bin)
# Per runner process; the watchdog budgets (timeout_s) are above these.
SUBTEST_TIMEOUT_S = 90.0
WHOLE_TIMEOUT_S = 300.0
# buffers_huge maps two 2M pages, THP or else hugetlb; the guest kernel has no THP.
HUGETLB_PAGES = 2

if SERIES.state is BuildState.BUILT:
    SUBTEST_PARAMS = [pytest.param(s, id=s) for s in SERIES.subtests]
    TEST_PARAMS = [pytest.param(t, id=t) for t in SERIES.tests]
else:
    SUBTEST_PARAMS = TEST_PARAMS = [pytest.param(None, id="series")]


def _unavailable() -> None:
    if SERIES.state is BuildState.ABSENT:
        pytest.skip(f"series selftests not built: {SERIES.reason}")
    if SERIES.state is not BuildState.BUILT:
        pytest.fail(f"{SERIES.reason}\n{SERIES.build_log()}", pytrace=False)


@pytest.fixture(scope="module")
def hugetlb_pool() -> Iterator[str | None]:
    """Free 2M hugetlb pages for buffers_huge while this module runs."""
    if SERIES.state is not BuildState.BUILT:
        yield None
        return
    with reserved_hugetlb(HUGETLB_PAGES) as why_not:
        yield why_not


def _run(args: list[str], timeout: float, cwd: Path) -> tuple[Finished, RunnerOutput]:
    finished = run_bounded([SERIES.runner, *args], timeout=timeout * SETTINGS.timeout_scale,
                           cwd=cwd)
    return finished, parse_runner_output(finished.output)


def _fail(message: str, finished: Finished) -> None:
    pytest.fail(f"{message}\n--- runner ---\n{finished.describe()}", pytrace=False)


def _check_ended(finished: Finished, parsed: RunnerOutput) -> None:
    """The runner must have finished on its own, with a well-formed output."""
    if finished.timed_out or finished.returncode is None or finished.returncode < 0:
        died = parsed.died_in()
        where = f" during {died.name}" if died else ""
        _fail(f"the runner did not finish{where}", finished)
    if parsed.errors:
        _fail(f"malformed runner output: {parsed.errors}", finished)


def _skip_reason(outcome: Outcome) -> str:
    lines = [line for line in outcome.log if line.strip()]
    return lines[-1] if lines else "skipped without a reason"


@pytest.mark.timeout_s(SUBTEST_TIMEOUT_S + 30)
@pytest.mark.parametrize("subtest", SUBTEST_PARAMS)
def test_subtest(subtest: str | None, hugetlb_pool: str | None, tmp_path: Path) -> None:
    if subtest is None:
        _unavailable()
        return
    test = subtest.split("/", 1)[0]
    finished, parsed = _run([subtest], SUBTEST_TIMEOUT_S, tmp_path)
    _check_ended(finished, parsed)
    top = parsed.outcomes.get(test)
    if top is None:
        _fail(f"the runner did not start {test}", finished)
        return
    outcome = parsed.outcomes.get(subtest)
    if outcome is None:
        _fail(f"{subtest} did not run; {test} printed outside its subtests:\n{top.log_text}",
              finished)
        return
    if outcome.verdict == "FAIL":
        pytest.fail(f"{subtest} failed:\n{outcome.log_text}", pytrace=False)
    # failures outside subtests (setup, teardown) fail every subtest that ran
    if top.verdict not in ("PASS", "SKIP") or finished.returncode != 0:
        _fail(f"{test} failed outside its subtests:\n{top.log_text}", finished)
    if outcome.verdict == "SKIP":
        hint = f" (hugetlb pool: {hugetlb_pool})" if hugetlb_pool else ""
        pytest.skip(f"{subtest}: {_skip_reason(outcome)}{hint}")
    assert outcome.verdict == "PASS"


@pytest.mark.timeout_s(WHOLE_TIMEOUT_S + 60)
@pytest.mark.parametrize("test", TEST_PARAMS)
def test_whole(test: str | None, hugetlb_pool: str | None, tmp_path: Path) -> None:
    if test is None:
        _unavailable()
        return
    finished, parsed = _run([test], WHOLE_TIMEOUT_S, tmp_path)
    _check_ended(finished, parsed)
    top = parsed.outcomes.get(test)
    if top is None or top.verdict is None:
        _fail(f"the runner did not run {test} to its end", finished)
        return
    ran = {o.name: o for o in parsed.subtests_of(test)}
    listed = [s for s in SERIES.subtests if s.startswith(test + "/")]
    problems = []
    for name in listed:
        if name not in ran:
            problems.append(f"{name}: never started")
    for name, outcome in ran.items():
        note = "" if name in listed else " (not in subtests.txt: its name is built at run time)"
        if outcome.verdict == "FAIL":
            problems.append(f"{name}: FAIL{note}\n{outcome.log_text}")
    if top.extra.get("own_errors", "0") != "0":
        problems.append(f"{test}: failed checks outside subtests:\n{top.log_text}")
    if problems or finished.returncode != 0:
        _fail(f"{test} with all subtests in one process (exit {finished.returncode}):\n"
              + "\n".join(problems), finished)
    assert top.verdict in ("PASS", "SKIP")
