"""The training loop: first-step loss, learning, schedule, resume and finished runs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import io, models
from spectral_jax.train import checkpoints, loop, optimizer as optimizer_lib, step as step_lib


def test_first_step_loss_is_ln10(digits, smoke_config):
    for name in ("cnn", "mlp"):
        smoke_config.model = name
        model, variables = models.create_model(smoke_config, digits.image_shape, 10, jax.random.key(0))
        opt, _ = optimizer_lib.make_optimizer(smoke_config, 100)
        train_step = step_lib.make_train_step(model, opt, smoke_config, 10, steps_per_epoch=44)
        data = step_lib.DeviceSplit.put(digits.split("train"), digits.mean, digits.std)
        perm = jnp.arange(len(digits.split("train")))
        _, m = train_step(step_lib.init_state(variables, opt), step_lib.zero_metrics(), data, perm,
                          jax.random.key(1), {})
        assert float(m["loss_sum"] / m["count"]) == pytest.approx(math.log(10), abs=1e-5)


def test_cosine_schedule_counts_from_one():
    sched = optimizer_lib.cosine_schedule(0.1, 10)
    assert float(sched(0)) == pytest.approx(0.05 * (1 + math.cos(math.pi / 10)), rel=1e-6)
    assert float(sched(9)) == pytest.approx(0.0, abs=1e-9)


def test_weight_decay_is_coupled_l2():
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
    assert float(step_lib.l2_penalty(params)) == pytest.approx(0.5 * (1 + 4 + 9))
    grads = jax.grad(step_lib.l2_penalty)(params)
    np.testing.assert_allclose(grads["a"], params["a"])


def test_train_learns_resumes_and_finishes(tmp_path, smoke_config, capsys):
    workdir = tmp_path / "run"
    summary = loop.train_and_evaluate(smoke_config, workdir, quiet=True)
    records = io.read_jsonl(workdir / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"):
        assert key in records[0]
    assert records[0]["train_loss"] < math.log(10)
    assert records[1]["train_loss"] < records[0]["train_loss"]  # loss decreases on digits
    assert summary["final_test_acc"] > 0.85
    steps = checkpoints.valid_steps(workdir)
    assert steps == [records[0]["step"], records[1]["step"]]

    # Finished: re-running does nothing but say so.
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}
    loop.train_and_evaluate(smoke_config, workdir)
    assert "already finished" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}

    # Resume from epoch 1 after losing the last checkpoint: same final parameters.
    abstract = models.create_model(smoke_config, (8, 8, 1), 10)[1]
    final = checkpoints.restore_variables(workdir, steps[-1], abstract)
    import shutil

    shutil.rmtree(checkpoints.checkpoint_dir(workdir) / str(steps[-1]))
    (workdir / "summary.json").unlink()
    loop.train_and_evaluate(smoke_config, workdir, quiet=True)
    again = checkpoints.restore_variables(workdir, steps[-1], abstract)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), final, again)
    assert [r["epoch"] for r in io.read_jsonl(workdir / "metrics.jsonl")] == [1, 2]

    # A different config in the same workdir is refused before any compute.
    smoke_config.lr = 0.01
    with pytest.raises(ValueError, match=r"different config \(lr: 0.05 -> 0.01\)"):
        loop.train_and_evaluate(smoke_config, workdir, quiet=True)


def test_damaged_newest_checkpoint_is_skipped_with_warning(tmp_path, smoke_config):
    smoke_config.epochs = 1
    workdir = tmp_path / "run"
    loop.train_and_evaluate(smoke_config, workdir, quiet=True)
    good = checkpoints.valid_steps(workdir)
    (checkpoints.checkpoint_dir(workdir) / "999").mkdir()  # a save killed half-way
    with pytest.warns(UserWarning, match=r"checkpoints/999"):
        assert checkpoints.valid_steps(workdir) == good


def test_latest_checkpoints_plus_permanent_ones_are_kept(tmp_path, smoke_config):
    smoke_config.epochs, smoke_config.ckpt_keep, smoke_config.ckpt_every_epochs = 5, 1, 2
    loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    # 44 steps per epoch: permanent at epochs 2 and 4, plus the latest (epoch 5)
    assert checkpoints.valid_steps(tmp_path / "run") == [88, 176, 220]
