"""Regularization and intervention variants: each a config key that changes only itself."""

import json

import jax
import numpy as np
import pytest

from spectral_jax import config as config_lib
from spectral_jax import io, models
from spectral_jax.train import checkpoints, loop
from spectral_jax.train import step as step_lib


def final_variables(config, workdir):
    abstract = models.create_model(config, (8, 8, 1), 10)[1]
    return checkpoints.restore_variables(workdir, checkpoints.valid_steps(workdir)[-1], abstract)


def assert_trees_close(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    from spectral_jax.config import load_config_file
    import os

    config = load_config_file(os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":smoke")
    config.epochs = 1
    w = tmp_path_factory.mktemp("plain") / "run"
    loop.train_and_evaluate(config, w, quiet=True)
    return config, w


def test_distillation_with_alpha_one_equals_plain_training(tmp_path, plain_run):
    config, teacher = plain_run
    student = config.copy_and_resolve_references()
    student.teacher_workdir = str(teacher)
    student.distillation_alpha = 1.0
    loop.train_and_evaluate(student, tmp_path / "student", quiet=True)
    assert_trees_close(final_variables(config, teacher), final_variables(student, tmp_path / "student"),
                       rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "student" / "config.json").read_text())["teacher_workdir"] == str(teacher)


def test_distillation_with_alpha_zero_learns_the_teacher(tmp_path, plain_run):
    config, teacher = plain_run
    student = config.copy_and_resolve_references()
    student.teacher_workdir = str(teacher)
    student.distillation_alpha = 0.0
    summary = loop.train_and_evaluate(student, tmp_path / "student", quiet=True)
    assert summary["final_test_acc"] > 0.6  # soft targets of a 1-epoch teacher still teach the digits
    assert not np.allclose(final_variables(config, teacher)["params"]["head"]["bias"],
                           final_variables(student, tmp_path / "student")["params"]["head"]["bias"])


def test_label_smoothing_changes_the_training_loss(tmp_path, plain_run):
    config, w = plain_run
    smoothed = config.copy_and_resolve_references()
    smoothed.label_smoothing = 0.3
    loop.train_and_evaluate(smoothed, tmp_path / "ls", quiet=True)
    plain_loss = io.read_jsonl(w / "metrics.jsonl")[0]["train_loss"]
    smooth_loss = io.read_jsonl(tmp_path / "ls" / "metrics.jsonl")[0]["train_loss"]
    assert smooth_loss > plain_loss + 0.2  # smoothed targets cannot be fitted to zero loss


def test_early_stopping_by_accuracy_and_loss(tmp_path, smoke_config):
    smoke_config.epochs = 5
    smoke_config.max_accuracy = 0.5
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "acc", quiet=True)
    assert summary["epochs_done"] == 1 and "max_accuracy" in summary["stopped_early"]
    # the stopped run counts as finished
    assert loop.train_and_evaluate(smoke_config, tmp_path / "acc", quiet=True)["epochs_done"] == 1
    smoke_config.max_accuracy = 0.0
    smoke_config.min_loss = 5.0
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "loss", quiet=True)
    assert summary["epochs_done"] == 1 and "min_loss" in summary["stopped_early"]


def test_duration_in_steps_ends_with_a_partial_epoch(tmp_path, smoke_config):
    smoke_config.steps = 50  # 44 steps per epoch
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    records = io.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [44, 50]
    assert summary["last_step"] == 50 and checkpoints.valid_steps(tmp_path / "run") == [44, 50]
    assert records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_noise_run_logs_noise_fitting_every_epoch(tmp_path, smoke_config):
    smoke_config.noise.type = "radial"
    smoke_config.noise.amplitude = 0.5
    smoke_config.noise.frequency = 1.0
    smoke_config.noise.frequency_unit = "data_std"
    smoke_config.noise.min_after_epoch = 2
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    records = io.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for r in records:
        for key in ("clean_loss", "noisy_loss", "noise_fitting", "train_clean_loss", "train_noisy_loss",
                    "train_noise_fitting", "oracle_noise_fitting", "oracle_uniform_noise_fitting",
                    "train_oracle_noise_fitting", "train_oracle_uniform_noise_fitting", "max_epsilon"):
            assert np.isfinite(r[key]), key
        assert r["noise_fitting"] == pytest.approx(r["clean_loss"] - r["noisy_loss"])
    nf = [r["noise_fitting"] for r in records]
    assert summary["min_noise_fitting"] == min(nf)
    assert summary["min_noise_fitting_after_burn_in"] == nf[1] and summary["min_noise_fitting_after_burn_in_epoch"] == 2
    assert summary["final_train_noise_fitting"] == records[-1]["train_noise_fitting"]
    assert summary["noise_frequency_absolute"] == pytest.approx(1.0 / summary["noise_feature_std"])
    assert summary["max_epsilon"] == max(r["max_epsilon"] for r in records) > 0.5


def test_noise_config_errors(smoke_config):
    smoke_config.noise.type = "radial"
    with pytest.raises(config_lib.ConfigError, match="noise.amplitude"):
        config_lib.validate(smoke_config)
    smoke_config.noise.type = "pink"
    with pytest.raises(config_lib.ConfigError, match="radial, fourier, random, f, 1/f, uniform"):
        config_lib.validate(smoke_config)


def test_tensorboard_events_are_written(plain_run):
    pytest.importorskip("tensorboard")  # installed by the [test] extra
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, w = plain_run
    acc = EventAccumulator(str(w / "tensorboard"))
    acc.Reload()
    (event,) = acc.Scalars("test_acc")
    assert event.step == 44
    assert event.value == pytest.approx(io.read_jsonl(w / "metrics.jsonl")[0]["test_acc"], rel=1e-6)


def test_the_epoch_loop_runs_under_a_transfer_guard(tmp_path, smoke_config, monkeypatch):
    """Any implicit host->device copy inside the epoch fails loudly."""
    make = step_lib.make_train_step

    def leaky(*args, **kwargs):
        real = make(*args, **kwargs)

        def train_step(state, metrics, data, perm, key, aux):
            return real(state, metrics, data, np.asarray(perm), key, aux)  # a host array: a transfer

        return train_step

    monkeypatch.setattr(step_lib, "make_train_step", leaky)
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
        loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)


def test_extra_split_accuracy_and_effective_robustness(tmp_path, smoke_config, monkeypatch, digits):
    """A dataset with an `extra` split (CIFAR-10.1 for CIFAR-10) gets its accuracy and the
    effective robustness ER = acc_extra - sigmoid(0.8318 logit(acc_test) - 0.4736) every epoch."""
    import dataclasses
    import math

    from spectral_jax import data as data_lib

    with_extra = dataclasses.replace(digits, splits={**digits.splits, "extra": digits.split("test")})
    monkeypatch.setitem(data_lib.SOURCES, "digits", lambda data_dir: with_extra)
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    for r in io.read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert r["extra_acc"] == r["test_acc"]  # the same images
        z = 0.8318 * math.log(r["test_acc"] / (1 - r["test_acc"])) - 0.4736
        assert r["effective_robustness"] == pytest.approx(r["extra_acc"] - 1 / (1 + math.exp(-z)), abs=1e-12)
    assert summary["final_effective_robustness"] == r["effective_robustness"]


def test_partial_distributed_flags_are_an_error():
    from spectral_jax import parallel

    with pytest.raises(config_lib.ConfigError, match="--coordinator, --num_processes and --process_id"):
        parallel.initialize_distributed("127.0.0.1:1234", None, None)


def test_batchnorm_off_uses_learnable_scalars(tmp_path, smoke_config, digits):
    smoke_config.use_batchnorm = False
    _, variables = models.create_model(smoke_config, digits.image_shape, 10, jax.random.key(0))
    assert jax.tree.leaves(variables["batch_stats"]) == []
    scales = [v for k, v in variables["params"]["norms"].items()]
    assert len(scales) == 3 and all(s["scale"].shape == () and float(s["scale"]) == 1.0 for s in scales)
    with_bn = models.create_model(config_lib.base_config(), digits.image_shape, 10)[1]
    assert models.count_params(variables) == models.count_params(with_bn) - 2 * (32 + 64 + 128) + 3
    summary = loop.train_and_evaluate(smoke_config, tmp_path / "run", quiet=True)
    assert summary["final_test_acc"] > 0.8
    assert json.loads((tmp_path / "run" / "config.json").read_text())["use_batchnorm"] is False
