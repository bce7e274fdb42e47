"""Shared test fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# Converted models (nuclib.engines' disk cache) go to a folder of this run, not ~/.cache.
# Zoo models in the tests run Keras unless a test asks for another engine: the
# expected values are Keras's, and the engines are compared with it in test_engines.py.
os.environ.setdefault("NUCLIB_ENGINE", "keras")
if "NUCLIB_CACHE_DIR" not in os.environ:
    os.environ["NUCLIB_CACHE_DIR"] = tempfile.mkdtemp(prefix="nuclib-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NUCLIB_CACHE_DIR"], ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
DSB = Path(os.environ.get("NUCLIB_DSB2018", REPO.parent / "shared" / "data" / "dsb2018"))
EXAMPLES = REPO / "examples" / "data"


@pytest.fixture(scope="session")
def dsb_root() -> Path:
    """Root of the shared DSB2018 copy (train/ and val/); tests need it present."""
    if not (DSB / "val" / "images").is_dir():
        raise FileNotFoundError(f"DSB2018 data not found at {DSB}; set NUCLIB_DSB2018")
    return DSB


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The sample images bundled in examples/data."""
    return EXAMPLES


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
