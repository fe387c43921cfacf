"""Check guest test ids on the host before anything is built or booted.

Collecting the guest suite on the host takes well under a second (the guest
plugin is plain pytest), so a typo in ONLY= or TEST= is refused at once with
the ids that do exist, instead of after a kernel build and a boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .procs import Runner

# collection exit codes of pytest: 0 collected, 4 usage error (no such file or
# id), 5 nothing collected
_COLLECTED, _NO_TESTS = 0, 5


@dataclass(frozen=True)
class Collected:
    ids: list[str]


def collect(runner: Runner, python: Path, guest_tests: Path, selection: list[str],
            env: dict[str, str] | None = None) -> Collected:
    """Every nodeid the selection names; UsageError naming the ones that do not exist."""
    done = runner.run([str(python), "-m", "pytest", "--collect-only", "-q", "-p",
                       "no:cacheprovider", *selection], cwd=guest_tests, check=False,
                      env={"HARNESS_COLLECT_ONLY": "1", **(env or {})}, timeout=120)
    ids = [line.strip() for line in done.output.splitlines() if "::" in line
           and not line.startswith(("ERROR", "FAILED", "  "))]
    if done.returncode == _COLLECTED and ids:
        return Collected(ids=ids)
    errors = [line for line in done.output.splitlines()
              if line.startswith("ERROR") or "not found" in line or "Error" in line]
    what = " ".join(selection)
    if done.returncode == _NO_TESTS or (done.returncode == _COLLECTED and not ids):
        raise UsageError(f"no guest test matches {what!r}; ids are relative to {guest_tests}, "
                         "e.g. test_kernel.py::test_io_uring_nop_round_trip (list them with "
                         f"`cd {guest_tests} && ../.venv/bin/python -m pytest --collect-only -q`)")
    raise UsageError(f"guest test selection {what!r} does not collect:\n  "
                     + "\n  ".join(errors[:8] or done.output.splitlines()[-8:]))
