"""The training loop: first-step loss, learning, schedule, resume and finished runs."""

import math
import shutil

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
        train_step = step_lib.make_train_step(model, smoke_config, 10, total_steps=100, steps_per_epoch=44)
        data = step_lib.DeviceSplit.put(digits.split("train"), digits.mean, digits.std)
        perm = jnp.arange(len(digits.split("train")))
        aux = {"hyper": step_lib.hyperparameters(smoke_config)}
        _, m = train_step(step_lib.init_state(variables, opt), step_lib.zero_metrics(), data, perm,
                          jax.random.key(1), aux)
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

    # Finished: re-running does nothing but say so (only the run directory's lock is taken and freed).
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file() and p.suffix != io.LOCK_SUFFIX}
    loop.train_and_evaluate(smoke_config, workdir)
    assert "already finished" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file() and p.suffix != io.LOCK_SUFFIX}

    # Resume from epoch 1 after losing the last checkpoint: same final parameters.
    abstract = models.create_model(smoke_config, (8, 8, 1), 10)[1]
    final = checkpoints.restore_variables(workdir, steps[-1], abstract)

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


def tiny_state(value: float) -> dict:
    return {"params": {"w": np.full((2,), value, np.float32)}, "batch_stats": {},
            "opt_state": {"m": np.zeros((2,), np.float32)}, "step": np.int32(value)}


def test_unfinished_checkpoint_directories_are_skipped_with_a_warning(tmp_path):
    root = checkpoints.checkpoint_dir(tmp_path)
    for step, finished in ((10, True), (20, True), (30, False)):  # 30: a save killed half-way
        (root / str(step)).mkdir(parents=True)
        if finished:
            (root / str(step) / checkpoints.FINALIZED_MARKER).write_text("{}")
    (root / "damaged_40_0").mkdir()  # set aside earlier: not a step
    with pytest.warns(UserWarning, match=r"checkpoints/30"):
        assert checkpoints.valid_steps(tmp_path) == [10, 20]
    assert checkpoints.step_dirs(tmp_path) == [10, 20, 30]


def test_latest_checkpoints_plus_permanent_ones_are_kept(tmp_path):
    ckpt = checkpoints.Checkpointer(tmp_path, keep=1, permanent_every=2 * 44)
    for epoch in range(1, 6):
        ckpt.save(44 * epoch, tiny_state(epoch))
    ckpt.close()
    # permanent at epochs 2 and 4, plus the latest (epoch 5)
    assert checkpoints.valid_steps(tmp_path) == [88, 176, 220]
    got = checkpoints.restore_state(tmp_path, 176, jax.eval_shape(lambda: tiny_state(0)))
    np.testing.assert_array_equal(got["params"]["w"], [4, 4])


def test_resume_by_workdir_extends_and_restarts_the_schedule_only_when_asked(tmp_path, capsys):
    from spectral_jax import cli

    demo = "configs/demo.py:smoke"
    w, r = str(tmp_path / "run"), str(tmp_path / "restarted")
    assert cli.main(["train", "--workdir", w]) == 2  # nothing to resume, no config given
    assert "no config.json" in capsys.readouterr().err
    for d in (w, r):
        assert cli.main(["train", "--config", demo, "--config.epochs=1", "--workdir", d]) == 0
    assert cli.main(["train", "--workdir", w]) == 0  # resumes from config.json: already finished
    assert "already finished" in capsys.readouterr().out

    assert cli.main(["train", "--workdir", w, "--config.epochs=3"]) == 0  # extended: one cosine over 3 epochs
    assert cli.main(["train", "--workdir", r, "--config.epochs=3", "--restart_schedule"]) == 0
    lr = {d: [rec["lr"] for rec in io.read_jsonl(tmp_path / d / "metrics.jsonl")] for d in ("run", "restarted")}
    total, spe = 3 * 44, 44
    cosine = lambda t, start, end: 0.025 * (1 + math.cos(math.pi * (t + 1 - start) / (end - start)))  # noqa: E731
    assert lr["run"][0] == pytest.approx(cosine(spe - 1, 0, spe))  # epoch 1 trained under the 1-epoch schedule
    assert lr["run"][1:] == pytest.approx([cosine(2 * spe - 1, 0, total), cosine(total - 1, 0, total)])
    assert lr["restarted"][1] == pytest.approx(cosine(2 * spe - 1, spe, total))  # a fresh cycle from step 44
    assert io.read_json(tmp_path / "restarted" / "config.json")["schedule_restart_step"] == spe
    # The extension killed after its first epoch, rerun the same way: the cycle it began is kept.
    shutil.rmtree(checkpoints.checkpoint_dir(tmp_path / "restarted") / str(total))
    (tmp_path / "restarted" / "summary.json").unlink()
    assert cli.main(["train", "--workdir", r, "--config.epochs=3", "--restart_schedule"]) == 0
    assert "resuming from step 88" in capsys.readouterr().out
    assert io.read_json(tmp_path / "restarted" / "config.json")["schedule_restart_step"] == spe
    rerun = [rec["lr"] for rec in io.read_jsonl(tmp_path / "restarted" / "metrics.jsonl")]
    assert rerun == pytest.approx(lr["restarted"])
    # Killed again, and resumed from the config file this time (no flag, schedule_restart_step 0
    # there): a rerun of the same duration still follows the cycle it began.
    shutil.rmtree(checkpoints.checkpoint_dir(tmp_path / "restarted") / str(total))
    (tmp_path / "restarted" / "summary.json").unlink()
    assert cli.main(["train", "--config", demo, "--config.epochs=3", "--workdir", r]) == 0
    assert io.read_json(tmp_path / "restarted" / "config.json")["schedule_restart_step"] == spe
    rerun = [rec["lr"] for rec in io.read_jsonl(tmp_path / "restarted" / "metrics.jsonl")]
    assert rerun == pytest.approx(lr["restarted"])
    assert io.read_json(tmp_path / "run" / "summary.json")["last_step"] == total

    assert cli.main(["train", "--workdir", w, "--config.epochs=2"]) == 2  # shortening is refused
    assert "can be extended, not shortened" in capsys.readouterr().err
    assert io.read_json(tmp_path / "run" / "config.json")["epochs"] == 3  # and leaves the run as it was


def test_metrics_log_gradient_update_and_parameter_norms(tmp_path, smoke_config):
    smoke_config.epochs = 1
    loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    (record,) = io.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    abstract = models.create_model(smoke_config, (8, 8, 1), 10)[1]
    params = checkpoints.restore_variables(tmp_path / "run", record["step"], abstract)["params"]
    norm = math.sqrt(sum(float(np.sum(np.square(p))) for p in jax.tree.leaves(params)))
    assert record["param_norm"] == pytest.approx(norm, rel=1e-5)
    assert 0 < record["update_norm"] < record["grad_norm"]  # lr < 1 shrinks the (clipped) gradient
    assert record["grad_norm"] < 50


def test_train_step_compiles_once_for_every_epoch(tmp_path, smoke_config, monkeypatch):
    import chex

    jit_step = step_lib._jit_step
    traced = []

    def counted(fn, mesh):
        traced.append(fn)
        return jit_step(chex.assert_max_traces(fn, n=1), mesh)  # a second trace raises

    monkeypatch.setattr(step_lib, "_jit_step", counted)
    loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)  # 2 epochs
    assert len(traced) == 1 and len(io.read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 2
