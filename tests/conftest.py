"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.catalog import Catalog, default_catalog

ROOT = Path(__file__).resolve().parent.parent
SHARED_RUNS = ROOT.parent / "shared" / "data" / "calibration_runs.yaml"
BUNDLED_RUNS = ROOT / "data" / "validation" / "calibration_runs.yaml"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="session")
def runs_file() -> Path:
    """The measured runs: ../shared/data when present, else the copy kept in the repo."""
    return SHARED_RUNS if SHARED_RUNS.exists() else BUNDLED_RUNS
