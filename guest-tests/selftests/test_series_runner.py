"""Self-tests of the series selftest runner (series/) and its output parser, on the host.

The runner and the test_progs.h shim are compiled here against the system's
libbpf with a made-up prog_tests file, so what the guest relies on (one
RESULT per subtest, failures outside subtests, skips, filters, a crash
leaving a RUN without RESULT) is checked without a kernel tree or a VM.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from helpers import run_bounded
from series_results import BuildState, SeriesBuild, parse_runner_output

GUEST_TESTS = Path(__file__).resolve().parent.parent
SHIM = GUEST_TESTS / "series"

FAKE_TEST = r"""
#include <test_progs.h>

static int twice(int x) { return 2 * x; }

void test_fake(void)
{
	char buf[64];

	if (!ASSERT_EQ(twice(2), 4, "setup"))
		return;
	if (test__start_subtest("pass")) {
		ASSERT_OK(0, "zero");
		ASSERT_OK_PTR(buf, "buf");
		ASSERT_ERR_PTR(NULL, "null");
		ASSERT_STREQ("a", "a", "same");
		ASSERT_HAS_SUBSTR("hello world", "lo w", "substr");
		printf("log of pass\n");
	}
	if (test__start_subtest("fail")) {
		printf("before\n");
		ASSERT_EQ(twice(3), 7, "twice three");
		ASSERT_STREQ("abcdef", "abcxef", "strings");
		ASSERT_GE(-1, 0, "ge");
	}
	if (test__start_subtest("skip")) {
		printf("%s:SKIP:no such thing\n", __func__);
		test__skip();
	}
	if (test__start_subtest("crash")) {
		printf("about to crash\n");
		fflush(stdout);
		*(volatile int *)0 = 1;
	}
	if (test__start_subtest("pass"))
		printf("never\n");
	ASSERT_EQ(1, 1, "after subtests");
}

void serial_test_other(void)
{
	ASSERT_TRUE(0, "outside any subtest");
	if (test__start_subtest("fine"))
		ASSERT_FALSE(0, "false");
}
"""


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        pytest.skip("needs cc and libbpf-dev")
    out = tmp_path_factory.mktemp("series")
    (out / "fake.c").write_text(FAKE_TEST)
    (out / "tests.h").write_text("SERIES_TEST(fake, test_fake)\nSERIES_TEST(other, serial_test_other)\n")
    exe = out / "runner"
    subprocess.run([cc, "-g", "-O1", "-Wall", "-Werror", "-D_GNU_SOURCE=", f"-I{SHIM}", f"-I{out}",
                    str(SHIM / "runner.c"), str(out / "fake.c"), "-o", str(exe), "-lbpf"],
                   check=True, capture_output=True, text=True)
    return exe


def test_each_subtest_has_a_result_and_its_log(runner: Path) -> None:
    finished = run_bounded([runner, "fake/pass", "fake/fail", "fake/skip"], timeout=30)
    parsed = parse_runner_output(finished.output)
    assert parsed.errors == []
    assert finished.returncode == 1
    assert list(parsed.outcomes) == ["fake", "fake/pass", "fake/fail", "fake/skip"]
    verdicts = {n: o.verdict for n, o in parsed.outcomes.items()}
    assert verdicts == {"fake": "FAIL", "fake/pass": "PASS", "fake/fail": "FAIL",
                        "fake/skip": "SKIP"}
    assert parsed.outcomes["fake/pass"].log == ["log of pass"]
    fail_log = parsed.outcomes["fake/fail"].log_text
    assert "before" in fail_log
    assert "twice three" in fail_log and "actual 6" in fail_log and "expected 7" in fail_log
    assert "first difference at offset 3" in fail_log
    assert "ge:" in fail_log
    assert parsed.outcomes["fake/skip"].log == ["test_fake:SKIP:no such thing"]
    # the second "pass" is refused as a duplicate: an error outside subtests
    assert parsed.outcomes["fake"].extra == {"failed": "1", "skipped": "1", "own_errors": "1"}
    assert 'subtest "pass" started twice' in parsed.outcomes["fake"].log_text


def test_filter_runs_one_subtest(runner: Path) -> None:
    finished = run_bounded([runner, "fake/pass"], timeout=30)
    parsed = parse_runner_output(finished.output)
    assert list(parsed.outcomes) == ["fake", "fake/pass"]
    assert parsed.outcomes["fake/pass"].verdict == "PASS"
    # the duplicate start of "pass" fails the test outside its subtests
    assert parsed.outcomes["fake"].verdict == "FAIL"


def test_failure_outside_subtests(runner: Path) -> None:
    finished = run_bounded([runner, "other"], timeout=30)
    parsed = parse_runner_output(finished.output)
    assert finished.returncode == 1
    assert parsed.outcomes["other"].verdict == "FAIL"
    assert parsed.outcomes["other"].extra["own_errors"] == "1"
    assert "outside any subtest" in parsed.outcomes["other"].log_text
    assert parsed.outcomes["other/fine"].verdict == "PASS"


def test_crash_leaves_run_without_result(runner: Path) -> None:
    finished = run_bounded([runner, "fake/crash"], timeout=30)
    parsed = parse_runner_output(finished.output)
    assert finished.returncode is not None and finished.returncode < 0
    died = parsed.died_in()
    assert died is not None and died.name == "fake/crash"
    assert died.log == ["about to crash"]
    assert "died of signal" in finished.describe()


def test_no_match_is_a_usage_error(runner: Path) -> None:
    assert run_bounded([runner, "nosuch"], timeout=30).returncode == 2


def test_parser_flags_protocol_errors() -> None:
    text = textwrap.dedent("""\
        stray
        RUN a
        RUN b/x
        RESULT a PASS 0.1
        RUN a/y
        RESULT a/y PASS 0.2
        """)
    parsed = parse_runner_output(text)
    assert parsed.outside == ["stray"]
    # after the stray b/x, a is no longer the test running: a/y is outside too
    assert parsed.errors == ["subtest b/x started outside its test",
                             "RESULT for a, which is not the one running",
                             "subtest a/y started outside its test"]


def test_build_states(tmp_path: Path) -> None:
    assert SeriesBuild.load(None).state is BuildState.ABSENT
    assert SeriesBuild.load(tmp_path).state is BuildState.MISSING
    series = tmp_path / "series"
    series.mkdir()
    (series / "status").write_text("absent: no KSRC\n")
    build = SeriesBuild.load(tmp_path)
    assert (build.state, build.reason) == (BuildState.ABSENT, "no KSRC")
    (series / "status").write_text("failed: see build.log\n")
    (series / "build.log").write_text("cc: error: oops\n")
    build = SeriesBuild.load(tmp_path)
    assert build.state is BuildState.FAILED and "oops" in build.build_log()
    (series / "status").write_text("built: t from /k\n")
    (series / "tests.h").write_text("SERIES_TEST(t, test_t)\n")
    (series / "subtests.txt").write_text("t/a\nt/b\n")
    build = SeriesBuild.load(tmp_path)
    assert build.state is BuildState.BUILT
    assert build.tests == ("t",) and build.subtests == ("t/a", "t/b")
