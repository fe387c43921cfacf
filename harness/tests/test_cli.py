"""The command line's own checks, before anything is built or booted."""

import pytest

from harness import cli


def test_reproduce_refuses_an_unknown_test(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reproduce", "test_nothing_here.py::test_x"]) == 2
    assert "no such guest test: test_nothing_here.py::test_x" in capsys.readouterr().err


def test_reproduce_refuses_a_negative_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reproduce", "test_kernel.py", "--count", "-1"]) == 2
    assert "--count takes a number of rounds >= 0" in capsys.readouterr().err


def test_reproduce_defaults_until_the_first_finding() -> None:
    args = cli.build_parser().parse_args(["reproduce", "test_lock_ordering.py"])
    assert (args.count, args.max_minutes, args.variant, args.suites) == (0, 30.0, None,
                                                                          "reproduce")


def test_reproduce_exits_1_when_found_even_if_the_test_expected_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import pipeline
    from harness.results import RunResult

    class Found:
        def __init__(self, opts, *a):  # type: ignore[no-untyped-def]
            assert (opts.repeat, opts.variant) == (0, "negative")

        def execute(self) -> RunResult:
            run = RunResult(results_dir="r")   # all green: the negative test expected it
            run.info["reproduce:reproduce"] = {"finding": "LOCKDEP: possible deadlock in f"}
            return run
    monkeypatch.setattr(pipeline, "Pipeline", Found)
    assert cli.main(["reproduce", "negative/test_invert.py", "--variant", "negative"]) == 1
