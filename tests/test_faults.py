"""Faults: kill -9 and restart, damaged newest checkpoints, NaN losses."""

import os
import shutil
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import io, models
from spectral_jax.train import checkpoints, loop
from spectral_jax.train import step as step_lib

KILL = {"base_args": ["--config.epochs=4", "--config.batch_size=8"]}  # 179 steps per epoch


def test_kill_9_mid_epoch_then_resume_gives_the_same_parameters(tmp_path, workers):
    reference = workers.start(tmp_path / "ref", tmp_path / "ref.npz", **KILL)
    victim = workers.start(tmp_path / "run", tmp_path / "victim.npz", start_new_session=True, **KILL)
    first = checkpoints.checkpoint_dir(tmp_path / "run") / "179" / checkpoints.FINALIZED_MARKER
    deadline = time.time() + 180
    while not first.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert first.exists(), "the first epoch never finished"
    time.sleep(0.15)  # into epoch 2
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "summary.json").exists()
    workers.finish(workers.start(tmp_path / "run", tmp_path / "resumed.npz", **KILL))
    workers.finish(reference)
    got, _, step = workers.params(tmp_path / "resumed.npz")
    want, _, ref_step = workers.params(tmp_path / "ref.npz")
    assert step == ref_step == 4 * 179
    workers.assert_same_params(got, want, rtol=1e-6, atol=1e-7)
    epochs = [r["epoch"] for r in io.read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert epochs == [1, 2, 3, 4]


def test_damaged_newest_checkpoint_falls_back_with_a_warning(tmp_path, smoke_config):
    w = tmp_path / "run"
    loop.train_and_evaluate(smoke_config, w, quiet=True)
    abstract = models.create_model(smoke_config, (8, 8, 1), 10)[1]
    final = checkpoints.restore_variables(w, 88, abstract)
    # Truncate the newest checkpoint: its metadata says "finished", its arrays are gone.
    for p in (checkpoints.checkpoint_dir(w) / "88" / "variables").iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (w / "summary.json").unlink()
    with pytest.warns(UserWarning, match=r"Skipping damaged checkpoint .*checkpoints/88"):
        loop.train_and_evaluate(smoke_config, w, quiet=True)
    assert (checkpoints.checkpoint_dir(w) / "damaged_88_0").is_dir()  # set aside, not deleted
    again = checkpoints.restore_variables(w, 88, abstract)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), final, again)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, smoke_config, monkeypatch):
    make = step_lib.make_train_step

    def poisoned(*args, **kwargs):
        real = make(*args, **kwargs)
        calls = []

        def train_step(state, metrics, *rest):
            calls.append(1)
            if len(calls) == 50:  # step 50, in epoch 2 (44 steps per epoch)
                with jax.transfer_guard("allow"):
                    state = {**state, "params": jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state["params"])}
            return real(state, metrics, *rest)

        return train_step

    monkeypatch.setattr(step_lib, "make_train_step", poisoned)
    w = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"NaN/Inf at step 50 \(epoch 2\).*checkpoints/44"):
        loop.train_and_evaluate(smoke_config, w, quiet=True)
    assert checkpoints.valid_steps(w) == [44]
    assert [r["epoch"] for r in io.read_jsonl(w / "metrics.jsonl")] == [1]
    assert not (w / "summary.json").exists()
