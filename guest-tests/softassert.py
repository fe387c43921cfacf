"""SoftAssert: collect every failed check of a test, then fail once with all of them.

A test that compares many fields (every bvec of every buffer, every read of a
scenario) should report every mismatch of a run, not the first one:

    checks = SoftAssert()
    checks.eq("slot 2: bv_len", got, want)
    checks.true("the final call is last", recs[-1] is end)
    checks.done(finished.describe())     # pytest.fail with all of them, if any
"""

from __future__ import annotations

import pytest


class SoftAssert:
    def __init__(self, *, limit: int = 60) -> None:
        self.problems: list[str] = []
        self.limit = limit

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def eq(self, what: str, actual: object, expected: object, *, hexa: bool = False) -> bool:
        if actual == expected:
            return True
        if hexa and isinstance(actual, int) and isinstance(expected, int):
            self.problems.append(f"{what}: got {actual:#x}, expected {expected:#x}")
        else:
            self.problems.append(f"{what}: got {actual!r}, expected {expected!r}")
        return False

    def true(self, what: str, condition: bool) -> bool:
        if not condition:
            self.problems.append(what)
        return condition

    def report(self) -> str:
        shown = self.problems[:self.limit]
        more = len(self.problems) - len(shown)
        return "\n".join(shown) + (f"\n... and {more} more" if more else "")

    def done(self, context: str = "") -> None:
        """Fails the test with every problem (and @context, e.g. a helper's output)."""
        if self.problems:
            pytest.fail(self.report() + (f"\n--- helper ---\n{context}" if context else ""),
                        pytrace=False)
