"""Fixtures shared by the harness's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.tests.keptfakes import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)
