"""Which boots run which guest tests, and how long the host waits for each.

A suite is one boot's worth of guest tests. `make run` boots the main suite;
`make test` adds one boot per detectors/ file (an oops or a lockdep report
disarms the detectors for the rest of a boot), one per negative/ file, and
one of the wrap test kernel (kernel-patches/wrap/) for wrap/ and the
restore tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import protocol
from .layout import Layout
from .vm import Deadlines

SUITE_CHOICES = ("main", "detectors", "negative", "wrap", "all")
# Boot to the guest's start marker, per unit of scale.
BOOT_S = 60.0
# A whole boot, per unit of scale; reproduce mode has its own budget.
TOTAL_S = 900.0


@dataclass(frozen=True, kw_only=True)
class Suite:
    """One boot's worth of guest tests."""

    name: str
    selection: tuple[str, ...]   # pytest arguments, relative to guest-tests/
    env: tuple[tuple[str, str], ...] = ()
    detector_selftest: bool = False  # expected findings decide the outcome
    variant: str | None = None       # boots the kernel built with kernel-patches/<variant>/
    # reproduce mode: rounds of the selection (0: until the first finding),
    # within repeat_seconds; stop_round: the loop must stop in that round
    repeat: int | None = None
    repeat_seconds: float = 1800.0
    stop_round: int | None = None


MAIN_SUITE = Suite(name="guest", selection=(".",))


def _one_boot_per_file(layout: Layout, directory: str, like: Suite,
                       order: tuple[str, ...] = ()) -> list[Suite]:
    """A suite like `like` per <directory>/test_*.py, named <directory>-<file's
    words>, those in `order` first (by name after test_), then alphabetically."""
    files = sorted(layout.guest_tests.glob(f"{directory}/test_*.py"),
                   key=lambda p: (order.index(p.stem[5:]) if p.stem[5:] in order else len(order),
                                  p.name))
    return [replace(like, name=f"{directory}-{p.stem[5:].replace('_', '-')}",
                    selection=(f"{directory}/{p.name}",)) for p in files]


def detector_suites(layout: Layout) -> list[Suite]:
    """One boot per detectors/test_*.py: an oops or a lockdep report disarms
    detectors for the rest of a boot, so each group needs a fresh kernel."""
    return _one_boot_per_file(
        layout, "detectors",
        Suite(name="", selection=(), env=(("HARNESS_DETECTORS", "1"),), detector_selftest=True),
        order=("nonfatal", "lockdep", "stalls", "fatal"))


def negative_suites(layout: Layout) -> list[Suite]:
    """The negative control: one boot of the negative-control kernel per
    negative/test_*.py, each expecting its lockdep report (once per boot),
    through reproduce mode, which must stop at the report in round 1."""
    return _one_boot_per_file(
        layout, "negative",
        Suite(name="", selection=(), env=(("HARNESS_NEGATIVE", "1"),), detector_selftest=True,
              variant="negative", repeat=3, repeat_seconds=600.0, stop_round=1))


def wrap_suite() -> Suite:
    """The wrap test kernel (kernel-patches/wrap/: every new ring's counters start
    near 2^32, where on 6.12 only 2^32 requests take them): wrap/, then every
    restore scenario again, with counters that cross the wrap."""
    return Suite(name="wrap", selection=("wrap", "test_uringcr_restore.py"),
                 env=(("HARNESS_WRAP", "1"),), variant="wrap")


def variant_env(variant: str) -> tuple[tuple[str, str], ...]:
    """What a guest test directory of a variant's needs to be collected
    (negative/: HARNESS_NEGATIVE=1, wrap/: HARNESS_WRAP=1)."""
    return ((f"HARNESS_{variant.upper()}", "1"),)


def select_suites(layout: Layout, which: str, *, only: tuple[str, ...] = (),
                  stress_env: tuple[tuple[str, str], ...] = (),
                  repeat: int | None = None, repeat_minutes: float = 30.0,
                  variant: str | None = None) -> list[Suite]:
    """The boots of one run: `which` is one of SUITE_CHOICES; `only` narrows
    the main suite; `repeat` makes it one reproduce-mode boot of `only`."""
    if repeat is not None:
        return [Suite(name="reproduce", selection=only, repeat=repeat,
                      repeat_seconds=60 * repeat_minutes, variant=variant,
                      env=stress_env + (variant_env(variant) if variant else ()))]
    main = replace(MAIN_SUITE, env=MAIN_SUITE.env + stress_env)
    if only:
        main = Suite(name="guest", selection=only, env=stress_env)
    if which == "main":
        return [main]
    if which == "detectors":
        return detector_suites(layout)
    if which == "negative":
        return negative_suites(layout)
    if which == "wrap":
        return [wrap_suite()]
    if which == "all":
        return [main, *detector_suites(layout), *negative_suites(layout), wrap_suite()]
    raise ValueError(f"suite {which!r}: one of {', '.join(SUITE_CHOICES)}")


def deadlines_for(suite: Suite, scale: float) -> Deadlines:
    """The host's backstops for one boot. Inside a test window the host waits
    the test's own budget (from its BEGIN marker) plus grace; these cover the
    boot, the silence between tests and the whole run."""
    idle = protocol.IDLE_S * scale
    total = TOTAL_S * scale
    if suite.repeat is not None:   # the guest keeps the loop within its budget
        total = suite.repeat_seconds + (BOOT_S + protocol.IDLE_S) * scale + 120
    return Deadlines(boot=BOOT_S * scale, idle=idle, total=total, scale=scale)
