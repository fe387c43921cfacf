"""One error taxonomy, one exit status per kind of failure.

    0  everything passed and the kernel log is clean
    1  the code under test failed: a guest test, a detector self-test, the
       series (a patch that does not apply, a kernel that does not build, a
       checkpatch or sign-off problem), a kernel report
    2  the harness or the machine failed: a missing program or package, a
       config the kernel dropped, a guest build error, a VM that did not boot
       or was lost, a bad command line, a harness bug

Every exception a stage may raise derives from HarnessError or SeriesError;
anything else that escapes a stage is a harness bug, and exits 2 too.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_HARNESS = 2
EXIT_INTERRUPTED = 130


class HarnessError(Exception):
    """The harness or the machine could not do its part (exit 2)."""

    exit_code = EXIT_HARNESS


class SeriesError(Exception):
    """The kernel or series under test is at fault (exit 1)."""

    exit_code = EXIT_FAILED


class UsageError(HarnessError):
    """A bad command line: nothing was built or booted."""


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    code = getattr(exc, "exit_code", EXIT_HARNESS)
    return code if code in (EXIT_FAILED, EXIT_HARNESS) else EXIT_HARNESS


def is_series_fault(exc: BaseException) -> bool:
    return exit_code_for(exc) == EXIT_FAILED
