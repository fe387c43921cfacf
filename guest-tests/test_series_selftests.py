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

from collections.abc import Iterator
from pathlib import Path

import pytest

from guest_runner import RunnerPlugin
from helpers import Finished, Helpers
from hugepages import reserved_hugetlb
from series_results import BuildState, Outcome, RunnerOutput, SeriesBuild, parse_runner_output
from softassert import SoftAssert

# Per runner process, the watchdog's budget (the runner gets what is left of it).
SUBTEST_TIMEOUT_S = 120.0
WHOLE_TIMEOUT_S = 360.0
# buffers_huge maps two 2M pages, THP or else hugetlb; the guest kernel has no THP.
HUGETLB_PAGES = 2
_SERIES = pytest.StashKey[SeriesBuild]()


def _series_build(config: pytest.Config) -> SeriesBuild:
    """What series/build.mk built into HARNESS_GUEST_BIN (the runner plugin's
    settings), read once per session: the parameters depend on it."""
    if _SERIES not in config.stash:
        plugin = config.pluginmanager.get_plugin("harness-runner")
        guest_bin = plugin.settings.guest_bin if isinstance(plugin, RunnerPlugin) else None
        config.stash[_SERIES] = SeriesBuild.load(guest_bin)
    return config.stash[_SERIES]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test_subtest per subtest, one test_whole per test function."""
    series = _series_build(metafunc.config)
    for argname, names in (("subtest", series.subtests), ("test", series.tests)):
        if argname in metafunc.fixturenames:
            if series.state is BuildState.BUILT:
                params = [pytest.param(n, id=n) for n in names]
            else:
                params = [pytest.param(None, id="series")]
            metafunc.parametrize(argname, params)


@pytest.fixture(scope="session")
def series(request: pytest.FixtureRequest) -> SeriesBuild:
    return _series_build(request.config)


def _unavailable(series: SeriesBuild) -> None:
    if series.state is BuildState.ABSENT:
        pytest.skip(f"series selftests not built: {series.reason}")
    if series.state is not BuildState.BUILT:
        pytest.fail(f"{series.reason}\n{series.build_log()}", pytrace=False)


@pytest.fixture(scope="module")
def hugetlb_pool(series: SeriesBuild) -> Iterator[str | None]:
    """Free 2M hugetlb pages for buffers_huge while this module runs."""
    if series.state is not BuildState.BUILT:
        yield None
        return
    with reserved_hugetlb(HUGETLB_PAGES) as why_not:
        yield why_not


def _run(helpers: Helpers, series: SeriesBuild, args: list[str], cwd: Path
         ) -> tuple[Finished, RunnerOutput]:
    finished = helpers.command([series.runner, *args], cwd=cwd,
                               label=f"series-{'-'.join(args).replace('/', '-')}")
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


@pytest.mark.timeout_s(SUBTEST_TIMEOUT_S)
def test_subtest(subtest: str | None, series: SeriesBuild, hugetlb_pool: str | None,
                 helpers: Helpers, tmp_path: Path) -> None:
    if subtest is None:
        _unavailable(series)
        return
    test = subtest.split("/", 1)[0]
    finished, parsed = _run(helpers, series, [subtest], tmp_path)
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


@pytest.mark.timeout_s(WHOLE_TIMEOUT_S)
def test_whole(test: str | None, series: SeriesBuild, hugetlb_pool: str | None,
               helpers: Helpers, tmp_path: Path) -> None:
    if test is None:
        _unavailable(series)
        return
    finished, parsed = _run(helpers, series, [test], tmp_path)
    _check_ended(finished, parsed)
    top = parsed.outcomes.get(test)
    if top is None or top.verdict is None:
        _fail(f"the runner did not run {test} to its end", finished)
        return
    ran = {o.name: o for o in parsed.subtests_of(test)}
    listed = [s for s in series.subtests if s.startswith(test + "/")]
    checks = SoftAssert()
    checks.eq(f"{test}: the runner's exit status", finished.returncode, 0)
    for name in listed:
        checks.true(f"{name}: never started", name in ran)
    for name, outcome in ran.items():
        note = "" if name in listed else " (not in subtests.txt: its name is built at run time)"
        checks.true(f"{name}: FAIL{note}\n{outcome.log_text}", outcome.verdict != "FAIL")
    checks.true(f"{test}: failed checks outside subtests:\n{top.log_text}",
                top.extra.get("own_errors", "0") == "0")
    checks.done(f"{test} with all subtests in one process\n{finished.describe()}")
    assert top.verdict in ("PASS", "SKIP")
