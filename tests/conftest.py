"""Shared test setup: CPU only, quiet logs, and small shared fixtures."""

import logging
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def digits():
    from spectral_jax.data import open_dataset

    return open_dataset("digits")


@pytest.fixture
def smoke_config():
    """The demo config shrunk for tests (2 epochs, few lines)."""
    from spectral_jax.config import load_config_file

    return load_config_file(os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":smoke")


@pytest.fixture(scope="session")
def fake_dir(tmp_path_factory):
    """A real array_record data_dir holding synthetic `cifar10` and `imagenet2012`."""
    import fake_tfds

    root = tmp_path_factory.mktemp("tfds")
    fake_tfds.build(fake_tfds.FakeCifar10, str(root))
    fake_tfds.build(fake_tfds.FakeImagenet2012, str(root))
    return str(root)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished 2-epoch run of the demo's smoke config (2 checkpoints). Read-only: copy it
    (`run_copy`) before analysing into it."""
    from spectral_jax.config import load_config_file
    from spectral_jax.train import train_and_evaluate

    config = load_config_file(os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":smoke")
    workdir = tmp_path_factory.mktemp("trained") / "run"
    train_and_evaluate(config, str(workdir))
    return workdir


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of `trained_run` to analyse into."""
    import shutil

    return shutil.copytree(trained_run, tmp_path / "run")
