"""The retest flow's own logic; keptguest's mechanism has its own tests."""

from pathlib import Path

import pytest

from harness import kept_model, protocol
from harness.errors import EXIT_HARNESS, UsageError
from harness.layout import Layout
from harness.retest import _outcome, _Progress, load_usable
from harness.vm import VmStatus


def test_idle_deadline_follows_the_running_tests_budget() -> None:
    said: list[str] = []
    p = _Progress(say=said.append, scale=4.0, start=0.0)
    assert p.idle_timeout() == protocol.IDLE_S * 4
    p.console("[    1.000000] some kernel line")
    assert p.idle_timeout() == protocol.IDLE_S * 4
    p.console("[    1.000000] " + protocol.PREFIX + "BEGIN t.py::a budget=480\r")
    assert p.idle_timeout() == 480 + protocol.HOST_GRACE_S * 4
    p.console(protocol.PREFIX + protocol.end("t.py::a", "failed", "1"))
    assert p.idle_timeout() == protocol.IDLE_S * 4
    assert said[0].endswith("t.py::a") and said[1].endswith("t.py::a: failed")


def window(error: kept_model.KeptGuestError | None, console: str = "", code: int | None = 0
           ) -> kept_model.Window:
    return kept_model.Window(exit_code=code, console=console, seconds=3.0, error=error)


@pytest.mark.parametrize("error,console,status", [
    (None, "", VmStatus.COMPLETED),
    (kept_model.CommandHung("no progress for 600s", idle=True), "", VmStatus.HANG),
    (kept_model.GuestDied("QEMU is gone"), "Kernel panic - not syncing: Fatal exception",
     VmStatus.PANIC),
    (kept_model.GuestDied("QEMU is gone"), "", VmStatus.LOST),
    (kept_model.GuestUnresponsive("ssh does not answer"), "", VmStatus.LOST),
])
def test_a_window_maps_to_a_vm_outcome(error: kept_model.KeptGuestError | None, console: str,
                                        status: VmStatus, tmp_path: Path) -> None:
    out = _outcome(window(error, console, None if error else 0), tmp_path / "c.log")
    assert out.status is status
    if error is not None:
        assert str(error) in out.detail


def test_retest_without_a_kept_guest_says_how_to_start_one(tmp_path: Path) -> None:
    layout = Layout(repo=tmp_path / "repo", cache=tmp_path / "cache")
    with pytest.raises(UsageError, match="make guest"):
        load_usable(layout)


def test_guest_without_a_kernel_is_refused_before_booting(tmp_path: Path) -> None:
    from harness import cli
    layout = Layout(repo=Path(__file__).resolve().parents[2], cache=tmp_path / "cache")
    deps = cli.Deps(layout=lambda: layout)
    assert cli.main(["guest", "--accel", "tcg"], deps) == EXIT_HARNESS
    assert cli.main(["retest"], deps) == EXIT_HARNESS
