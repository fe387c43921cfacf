"""Round counts of the stress scenarios (fixture `stress`, conftest.py).

--stress-scale F (HARNESS_STRESS_SCALE) multiplies every scenario's default
rounds, --stress-rounds N (HARNESS_STRESS_ROUNDS) sets all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True, kw_only=True)
class Stress:
    scale: float = 1.0
    rounds: int | None = None

    def __post_init__(self) -> None:
        if (self.rounds is not None and self.rounds < 1) or not self.scale > 0:
            raise pytest.UsageError("stress rounds must be >= 1 and the scale > 0")

    def of(self, default: int) -> int:
        """The rounds of a scenario whose default is @default."""
        if self.rounds is not None:
            return self.rounds
        return max(1, round(default * self.scale))
