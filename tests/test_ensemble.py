"""Ensembles in one program: K members under jax.vmap equal K separate trainings."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import models
from spectral_jax.train import optimizer as optimizer_lib
from spectral_jax.train import step as step_lib


def test_vmapped_steps_equal_separate_steps(digits, smoke_config):
    """Two members with their own seed (init, data order, randomness), lr and weight decay."""
    spe, total = 44, 88
    members = []
    for seed, lr, wd in ((0, 0.05, 5e-4), (1, 0.2, 1e-3)):
        c = smoke_config.copy_and_resolve_references()
        c.seed, c.lr, c.weight_decay = seed, lr, wd
        members.append(c)
    model, _ = models.create_model(members[0], digits.image_shape, 10)
    data = step_lib.DeviceSplit.put(digits.split("train"), digits.mean, digits.std)
    perm_fn = step_lib.make_epoch_permutation(spe, len(digits.split("train")))
    single = step_lib.make_train_step(model, smoke_config, 10, total, spe)
    states, keys, data_keys, hypers = [], [], [], []
    for c in members:
        root = jax.random.key(c.seed)
        variables = models.create_model(c, digits.image_shape, 10, jax.random.fold_in(root, 0))[1]
        states.append(step_lib.init_state(variables, optimizer_lib.make_optimizer(c, total)[0]))
        data_keys.append(jax.random.fold_in(root, 1))
        keys.append(jax.random.fold_in(root, 2))
        hypers.append(step_lib.hyperparameters(c))

    stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x), *xs)  # noqa: E731
    stacked = stack(states)  # before the single steps donate the states
    want = []
    for state, data_key, key, hyper in zip(states, data_keys, keys, hypers):
        metrics = step_lib.zero_metrics()
        for _ in range(3):
            state, metrics = single(state, metrics, data, perm_fn(data_key, state["step"]), key, {"hyper": hyper})
        want.append((state, metrics))

    ensemble = step_lib.make_train_step(model, smoke_config, 10, total, spe, members=2)
    perms = step_lib.make_epoch_permutation(spe, len(digits.split("train")), members=2)
    state, metrics = stacked, stack([step_lib.zero_metrics()] * 2)
    data_keys, keys = jnp.stack(data_keys), jnp.stack(keys)
    for _ in range(3):
        state, metrics = ensemble(state, metrics, data, perms(data_keys, state["step"]), keys, {"hyper": stack(hypers)})
    for i, (w_state, w_metrics) in enumerate(want):
        got = jax.tree.map(lambda x: x[i], (state, metrics))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got, (w_state, w_metrics))
    assert not np.allclose(state["params"]["head"]["kernel"][0], state["params"]["head"]["kernel"][1])


def final_params(workdir, config):
    from spectral_jax.train import checkpoints

    step = checkpoints.valid_steps(workdir)[-1]
    return step, checkpoints.restore_variables(workdir, step, models.create_model(config, (8, 8, 1), 10)[1])


def test_ensemble_members_write_the_runs_they_would_write_alone(tmp_path, smoke_config, trained_run, capsys):
    """Member `seed_0` of `--config.ensemble_key=lr` equals the same run trained alone (the
    `trained_run` fixture); member `lr_0.2` follows its own learning rate. Killed between the
    members' saves, the ensemble resumes from their common step and ends the same."""
    import shutil

    from spectral_jax import cli, io

    w = tmp_path / "ens"
    args = ["train", "--config=configs/demo.py:smoke", "--config.ensemble=2", "--config.ensemble_key=lr",
            "--config.ensemble_values=(0.05, 0.2)", "--workdir", str(w)]
    assert cli.main(args) == 0
    assert sorted(p.name for p in w.iterdir()) == ["lr_0.05", "lr_0.2"]
    alone = io.read_json(trained_run / "config.json")
    assert io.read_json(w / "lr_0.05" / "config.json") == alone  # the same run, to the byte of its config
    assert io.read_json(w / "lr_0.2" / "config.json") == {**alone, "lr": 0.2}
    step, want = final_params(trained_run, smoke_config)
    got_step, got = final_params(w / "lr_0.05", smoke_config)
    assert got_step == step == 88
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, want)
    logged = [r["lr"] for r in io.read_jsonl(w / "lr_0.2" / "metrics.jsonl")]
    assert logged == pytest.approx([0.1 * (1 + math.cos(math.pi * 44 / 88)), 0.0], abs=1e-7)
    _, fast = final_params(w / "lr_0.2", smoke_config)
    assert not np.allclose(fast["params"]["head"]["kernel"], got["params"]["head"]["kernel"])

    # Killed after member lr_0.05 saved epoch 2 but before lr_0.2 did: lr_0.2 catches up alone.
    shutil.rmtree(w / "lr_0.2" / "checkpoints" / "88")
    (w / "lr_0.2" / "summary.json").unlink()
    capsys.readouterr()
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "lr_0.2: resuming from step 44" in out and "lr_0.05: already finished" in out
    _, again = final_params(w / "lr_0.2", smoke_config)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), again, fast)
    assert [r["epoch"] for r in io.read_jsonl(w / "lr_0.2" / "metrics.jsonl")] == [1, 2]
    assert io.read_json(w / "lr_0.2" / "summary.json")["last_step"] == 88


@pytest.mark.parametrize("override, message", [
    ("--config.max_accuracy=0.9", "Early stopping"),
    ("--config.ensemble_key=epochs", "valid choices: seed, lr, weight_decay, label_smoothing"),
    ("--config.ensemble_values=(1, 2, 3)", "3 values for ensemble=2"),
])
def test_what_cannot_be_an_ensemble_is_refused_before_anything_is_written(tmp_path, override, message, capsys):
    from spectral_jax import cli

    assert cli.main(["train", "--config=configs/demo.py:smoke", "--config.ensemble=2", override,
                     "--workdir", str(tmp_path / "w")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_members_may_differ_only_in_ensemble_keys(tmp_path, smoke_config):
    from spectral_jax.errors import ConfigError
    from spectral_jax.train import train_runs

    other = smoke_config.copy_and_resolve_references()
    other.model = "mlp"
    with pytest.raises(ConfigError, match="these differ too: model"):
        train_runs([smoke_config, other], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="a run directory of its own"):
        train_runs([smoke_config, smoke_config], [tmp_path / "a", tmp_path / "a"])
