"""Shared test setup: CPU only, quiet logs, and small shared fixtures."""

import logging
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def digits():
    from spectral_jax.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def smoke_config():
    """The demo config shrunk for tests (2 epochs, few lines)."""
    from spectral_jax.config import load_config_file

    return load_config_file(os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":smoke")
