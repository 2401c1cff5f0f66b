"""Shared test configuration: strict rank promotion, shared data, small fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("BRAINMASS_SHARED_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of reference data (`../shared/data`); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED_DATA}: these tests need ../shared/data beside "
            "the project root (or BRAINMASS_SHARED_DATA pointing at it)"
        )
    return SHARED_DATA
