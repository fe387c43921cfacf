from pathlib import Path

from harness import protocol
from harness.guest import GuestEnv, guest_script
from harness.suites import MAIN_SUITE, Suite, detector_suites
from harness.layout import Layout

def test_results_file_round_trip_and_a_cut_last_line(tmp_path: Path) -> None:
    p = protocol.results_file(tmp_path, "guest")
    rec = protocol.GuestResult(nodeid="test_kernel.py::test_nop[depth 4]", outcome="failed",
                               seconds=0.5, message="assert -22 == 0", round=2,
                               properties={"outcomes": '{"ok": 3}'})
    ok = protocol.GuestResult(nodeid="detectors/test_fatal.py::test_bug", outcome="passed",
                              seconds=1.0)
    p.write_text(rec.to_line() + ok.to_line() + ok.to_line()[:20])
    records, problems = protocol.read_results(p)
    assert records == [rec, ok]
    assert records[0].marker_id == "test_kernel.py::test_nop[depth_4]"
    assert len(problems) == 1 and "guest.results.jsonl:3: not JSON" in problems[0]


def test_results_file_rejects_bad_records(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text('{"nodeid": "a", "outcome": "maybe"}\n[1]\n\n')
    records, problems = protocol.read_results(p)
    assert records == [] and len(problems) == 2 and "maybe" in problems[0]
    assert protocol.read_results(tmp_path / "none.jsonl") == ([], [])


def test_guest_script_exports_the_environment_and_marks_start(tmp_path: Path) -> None:
    env = GuestEnv(repo=Path("/repo"), python=Path("/repo/.venv/bin/python"),
                   guest_bin=Path("/cache/gb"), kernel_release="6.12.117", timeout_scale=4,
                   test_timeout=30)
    text = guest_script(Suite(name="detectors-fatal", selection=("detectors/test_fatal.py",),
                              env=(("HARNESS_DETECTORS", "1"),)), env, tmp_path)
    assert "echo '<5>harness: GUEST START' > /dev/kmsg" in text
    assert "export HARNESS_KERNEL_RELEASE=6.12.117" in text
    assert "export HARNESS_TIMEOUT_SCALE=4" in text
    assert "export HARNESS_DETECTORS=1" in text
    assert f"export HARNESS_RESULTS_FILE={tmp_path}/detectors-fatal.results.jsonl" in text
    assert f"rm -f {tmp_path}/detectors-fatal.results.jsonl" in text
    assert f"--junitxml={tmp_path}/detectors-fatal.junit.xml detectors/test_fatal.py" in text
    assert MAIN_SUITE.selection == (".",)


def test_detector_suites_one_boot_per_file_fatal_last(tmp_path: Path) -> None:
    d = tmp_path / "guest-tests" / "detectors"
    d.mkdir(parents=True)
    for n in ("fatal", "nonfatal", "stalls", "lockdep"):
        (d / f"test_{n}.py").write_text("")
    names = [s.name for s in detector_suites(Layout(repo=tmp_path, cache=tmp_path / "c"))]
    assert names == ["detectors-nonfatal", "detectors-lockdep", "detectors-stalls",
                     "detectors-fatal"]
