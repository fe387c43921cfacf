"""Root conftest of the guest tests: registers the runner plugin (guest_runner.py).

Four directories are opt-in, collected only when a path inside them is named on
the command line, so a plain `pytest guest-tests` runs none of them:

* detectors/ provokes kernel crashes on purpose; one file per boot (a run holding
  more than one is a usage error). HARNESS_DETECTORS=1 also opts in, which is only
  useful with --collect-only.
* negative/ is the negative control: it deadlocks the negative-control kernel
  (kernel-patches/negative/) on purpose, one lockdep report per file and boot,
  like detectors/. HARNESS_NEGATIVE=1 opts in for --collect-only.
* wrap/ needs the wrap test kernel (kernel-patches/wrap/: rings whose counters
  start near 2^32) and fails on any other; HARNESS_WRAP=1 opts in.
* selftests/ checks the plugin itself against plain files; it runs on the host,
  where it takes a second (under TCG each child interpreter takes half a minute).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from guest_runner import RunnerPlugin
from helpers import Budget, Helpers
from kmsg import KmsgFollower
from stress import Stress
from uringcr_run import Owner, Uringcr

HERE = Path(__file__).parent
DETECTORS_DIR = HERE / "detectors"
NEGATIVE_DIR = HERE / "negative"
WRAP_DIR = HERE / "wrap"
SELFTESTS_DIR = HERE / "selftests"


@pytest.fixture
def kmsg() -> Iterator[KmsgFollower]:
    """Follows /dev/kmsg from before the test body runs (detectors/, negative/)."""
    follower = KmsgFollower()
    try:
        yield follower
    finally:
        follower.close()


def _env_number(name: str) -> str | None:
    raw = os.environ.get(name, "").strip()
    return raw or None


@pytest.fixture
def stress(request: pytest.FixtureRequest, stress_scale: float) -> Stress:
    """Round counts of the stress scenarios: --stress-rounds (HARNESS_STRESS_ROUNDS)
    sets them all, else each scenario's default times stress_scale."""
    rounds: int | None = request.config.getoption("stress_rounds", None)
    raw = _env_number("HARNESS_STRESS_ROUNDS")
    if rounds is None and raw:
        if not raw.isdigit():
            raise pytest.UsageError(f"HARNESS_STRESS_ROUNDS={raw!r} is not a round count")
        rounds = int(raw)
    return Stress(scale=stress_scale, rounds=rounds)


@pytest.fixture
def results_dir() -> Path | None:
    """HARNESS_RESULTS, the results directory shared with the host; None when unset."""
    raw = os.environ.get("HARNESS_RESULTS", "").strip()
    return Path(raw) if raw else None


@pytest.fixture
def helpers(guest_bin: Path, budget: Budget, timeout_scale: float,
            results_dir: Path | None, tmp_path: Path) -> Helpers:
    """Runs the guest programs (helpers.py) within this test's budget."""
    return Helpers(guest_bin=guest_bin, budget=budget, timeout_scale=timeout_scale,
                   results_dir=results_dir, tmp_path=tmp_path)


@pytest.fixture
def ucr(helpers: Helpers) -> Uringcr:
    """uringcr, as built for the guest (test_uringcr*.py)."""
    return Uringcr(helpers)


@pytest.fixture
def owners() -> Iterator[list[Owner]]:
    """Ring owners a checkpoint test starts; killed at the end if still there."""
    started: list[Owner] = []
    yield started
    for owner in started:
        owner.kill()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness stress", "round counts of the lock-ordering scenarios")
    group.addoption("--stress-rounds", type=int, default=None, dest="stress_rounds",
                    help="rounds of every stress scenario (default: each one's own, "
                    "or HARNESS_STRESS_ROUNDS)")
    group.addoption("--stress-scale", type=float, default=None, dest="stress_scale",
                    help="multiply each stress scenario's default rounds "
                    "(default 1, or HARNESS_STRESS_SCALE)")


def pytest_configure(config: pytest.Config) -> None:
    plugin = RunnerPlugin.from_env(os.environ)
    # --stress-scale beats HARNESS_STRESS_SCALE, for the budgets too
    scale: float | None = config.getoption("stress_scale", None)
    if scale is not None:
        if not scale > 0:
            raise pytest.UsageError(f"--stress-scale {scale:g}: must be > 0")
        plugin.settings = replace(plugin.settings, stress_scale=scale)
    config.pluginmanager.register(plugin, "harness-runner")


def _named_on_command_line(config: pytest.Config, directory: Path) -> bool:
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == directory or directory in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == DETECTORS_DIR and os.environ.get("HARNESS_DETECTORS") == "1":
        return None
    if collection_path == NEGATIVE_DIR and os.environ.get("HARNESS_NEGATIVE") == "1":
        return None
    if collection_path == WRAP_DIR and os.environ.get("HARNESS_WRAP") == "1":
        return None
    if collection_path in (DETECTORS_DIR, NEGATIVE_DIR, WRAP_DIR, SELFTESTS_DIR):
        return not _named_on_command_line(config, collection_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for directory in (DETECTORS_DIR, NEGATIVE_DIR):
        files = {item.path for item in items if directory in item.path.parents}
        if len(files) > 1 and not config.option.collectonly:
            names = ", ".join(sorted(p.name for p in files))
            raise pytest.UsageError(
                f"{directory.name}/ files need one boot each (an oops or a lockdep report "
                f"switches detectors off for the rest of the boot); got {names}"
            )
