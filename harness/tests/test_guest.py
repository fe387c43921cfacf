from pathlib import Path

from harness.guest import (GuestEnv, MAIN_SUITE, Suite, detector_suites, guest_script,
                           read_junit)
from harness.layout import Layout

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="test_kernel" name="test_release" time="0.01"/>
<testcase classname="test_kernel" name="test_nop[depth 4]" time="0.5">
  <failure message="assert -22 == 0">trace</failure></testcase>
<testcase classname="detectors.test_fatal" name="test_bug" time="1.0"/>
<testcase classname="test_kernel.TestIter" name="test_read" time="0.2">
  <skipped message="no BTF"/></testcase>
</testsuite></testsuites>
"""


def test_junit_names_match_the_guest_markers(tmp_path: Path) -> None:
    p = tmp_path / "j.xml"
    p.write_text(JUNIT)
    cases = {c.nodeid: c for c in read_junit(p)}
    assert set(cases) == {"test_kernel.py::test_release", "test_kernel.py::test_nop[depth_4]",
                          "detectors/test_fatal.py::test_bug",
                          "test_kernel.py::TestIter::test_read"}
    assert cases["test_kernel.py::test_nop[depth_4]"].outcome == "failed"
    assert cases["test_kernel.py::test_nop[depth_4]"].message == "assert -22 == 0"
    assert cases["test_kernel.py::TestIter::test_read"].outcome == "skipped"


def test_missing_or_truncated_junit_is_empty(tmp_path: Path) -> None:
    assert read_junit(tmp_path / "none.xml") == []
    (tmp_path / "cut.xml").write_text(JUNIT[:120])
    assert read_junit(tmp_path / "cut.xml") == []


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


def test_junit_properties_are_kept(tmp_path: Path) -> None:
    p = tmp_path / "j.xml"
    p.write_text('<testsuites><testsuite><testcase classname="test_lock_ordering" '
                 'name="test_self_read[buf]" time="1.0"><properties>'
                 '<property name="outcomes" value="{&quot;ok&quot;: 3, &quot;edeadlk&quot;: 5}"/>'
                 "</properties></testcase></testsuite></testsuites>")
    (case,) = read_junit(p)
    assert dict(case.properties)["outcomes"] == '{"ok": 3, "edeadlk": 5}'
