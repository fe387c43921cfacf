"""harness.suites: which boots a run makes, on this checkout's guest-tests/."""

from pathlib import Path

from harness.layout import REPO_ROOT, Layout
from harness.suites import select_suites
from harness.variant import Variant


def layout(tmp_path: Path) -> Layout:
    return Layout(repo=REPO_ROOT, cache=tmp_path)


def test_all_ends_with_the_wrap_kernel_boot(tmp_path: Path) -> None:
    suites = select_suites(layout(tmp_path), "all")
    names = [s.name for s in suites]
    assert names[0] == "guest" and names[-1] == "wrap"
    assert any(n.startswith("detectors-") for n in names)
    assert any(n.startswith("negative-") for n in names)
    wrap = suites[-1]
    assert wrap.variant == "wrap" and ("HARNESS_WRAP", "1") in wrap.env
    # wrap/ first, then every restore scenario again on that kernel
    assert wrap.selection == ("wrap", "test_uringcr_restore.py")
    for part in wrap.selection:
        assert (REPO_ROOT / "guest-tests" / part).exists(), part


def test_the_wrap_variant_is_one_test_only_patch(tmp_path: Path) -> None:
    variant = Variant.load(REPO_ROOT / "kernel-patches" / "wrap")
    assert [p.name for p in variant.patches] == [
        "0001-WRAP-TEST-io_uring-Start-every-ring-s-counters-near-.patch"]
    text = variant.patches[0].read_text()
    assert "never for merging" in text and "io_uring_counter_base" in text


def test_reproduce_on_a_variant_opts_its_directory_in(tmp_path: Path) -> None:
    for variant, env in (("negative", "HARNESS_NEGATIVE"), ("wrap", "HARNESS_WRAP")):
        (suite,) = select_suites(layout(tmp_path), "main", only=(f"{variant}/x.py",),
                                 repeat=2, variant=variant)
        assert suite.variant == variant and (env, "1") in suite.env
    (plain,) = select_suites(layout(tmp_path), "main", only=("test_kernel.py",), repeat=2)
    assert plain.variant is None and all(k != "HARNESS_WRAP" for k, _ in plain.env)
