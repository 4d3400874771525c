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
def finished_sweep_root(tmp_path_factory):
    """A finished 2-run sweep (E1 ':smoke': radial noise and its uniform control, 2 epochs each),
    run in this process by submitit's debug executor."""
    from spectral_jax.sweep import Options, run_sweep

    root = tmp_path_factory.mktemp("sweep") / "e1_smoke"
    status = run_sweep(os.path.join(os.path.dirname(__file__), "..", "configs", "experiments", "e1_noise_fitting.py")
                       + ":smoke", root, Options(executor="debug"), log=lambda *_: None)
    assert status == 0
    return root
