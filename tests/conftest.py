"""Shared test settings: quiet TensorFlow, and where ../shared is (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_runtime.paths import shared_dir as shared_assets_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The fixtures every test module may ask for: tiny models, converted tiny models, benchmark setups.
pytest_plugins = ["tests.edge_support", "tests.convert_support", "tests.bench_support"]

SHARED = shared_assets_dir()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared assets folder; tests that need it skip when it is absent."""
    if not (SHARED / "data" / "fer2013").is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set FER_SHARED to its path to run this test)")
    return SHARED
