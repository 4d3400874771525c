"""Shared test setup: CPU only, quiet logs, and small shared fixtures."""

import logging
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

# submitit configures logging when first imported (spectral-jax imports it only when a sweep
# submits), closing the handlers already installed; absl's handler holds the stderr that pytest
# was capturing when absl was imported, and closing it would break pytest's capture from then on.
# Imported first, before absl exists, it closes nothing.
try:
    import submitit  # noqa: E402, F401
except ImportError:  # the [test] extra has it; without it the sweep tests say so
    pass

logging.getLogger("absl").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def digits():
    from spectral_jax.data import open_dataset

    return open_dataset("digits")


@pytest.fixture
def linear_model():
    """(w [16, 4], images [40, 4, 4, 1] float, labels [40] of 4 classes) for `x.reshape(N, -1) @ w`."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 4, 4, 1)).astype(np.float32)
    return jnp.asarray(rng.normal(size=(16, 4)), jnp.float32), images, np.arange(40) % 4


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


class Workers:
    """Trainings in processes of their own (tests/train_worker.py): fake device counts, several
    processes, kills. `start` returns the Popen; `finish` waits and returns its output."""

    script = os.path.join(os.path.dirname(__file__), "train_worker.py")
    # 3 steps of batch 32 with the smoke config (BatchNorm CNN on digits)
    quick_args = ("--config.steps=3", "--config.batch_size=32", "--config.eval_batch_size=64")

    @classmethod
    def start(cls, workdir, out, extra=(), devices=1, base_args=quick_args, xla_flags="", **popen):
        import subprocess
        import sys

        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} {xla_flags}".strip())
        return subprocess.Popen([sys.executable, cls.script, str(workdir), str(out), *base_args, *extra], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)

    @staticmethod
    def finish(proc, timeout=240) -> str:
        import subprocess

        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"worker timed out:\n{out[-3000:]}")
        assert proc.returncode == 0, out[-3000:]
        return out

    @staticmethod
    def params(path):
        """(flattened final params, device count, step) a worker saved."""
        import numpy as np

        with np.load(path) as f:
            return {k: f[k] for k in f.files if k.startswith("[")}, int(f["devices"]), int(f["step"])

    @staticmethod
    def assert_same_params(a, b, rtol=2e-4, atol=2e-5):
        import numpy as np

        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)

    @staticmethod
    def free_port() -> int:
        """A free TCP port on 127.0.0.1 (the coordinator of a local multi-process run)."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


@pytest.fixture(scope="session")
def workers():
    return Workers
