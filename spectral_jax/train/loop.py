"""`train_and_evaluate(config, workdir)`: the training loop of a run directory.

config -> data (on device, uint8) -> model -> jitted steps -> per-epoch evaluation,
metrics.jsonl and an orbax checkpoint at the end of every epoch -> summary.json.

Data order comes from (seed, epoch) and stochastic layers from (seed, step), so a run
restarted from its newest checkpoint continues exactly where it stopped. Re-running a
finished run does nothing but say so; re-running with a different config is an error.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models
from spectral_jax.train import checkpoints, optimizer as optimizer_lib, step as step_lib

# Groups that only affect what is computed after training; changing them keeps the run.
POST_TRAINING_GROUPS = ("analysis",)


class RunFinished(Exception):
    pass


def prepare_workdir(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    """Writes config.json, or checks it against an existing run's (before any compute)."""
    path = Path(workdir) / "config.json"
    if path.exists():
        previous = config_lib.config_from_json(path)
        changed = config_lib.diff(previous, config, ignore=POST_TRAINING_GROUPS)
        if changed:
            details = "; ".join(f"{k}: {_get(previous, k)!r} -> {_get(config, k)!r}" for k in changed)
            raise config_lib.ConfigError(
                f"{workdir} already holds a run with a different config ({details}). "
                f"Use a new --workdir, or the run's own settings."
            )
    config_lib.write_config(config, workdir)


def _get(config, dotted):
    for part in dotted.split("."):
        config = config.get(part) if config is not None else None
    return config


def run_keys(seed: int) -> dict[str, jax.Array]:
    root = jax.random.key(seed)
    return {"init": jax.random.fold_in(root, 0), "data": jax.random.fold_in(root, 1),
            "step": jax.random.fold_in(root, 2)}


def epoch_permutation(data_key: jax.Array, epoch: int, n: int) -> jax.Array:
    """The order of epoch `epoch` (0-based), a pure function of (seed, epoch)."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *, quiet: bool = False) -> dict:
    """Trains `config` in `workdir` (resuming if it holds a partial run). Returns summary.json's dict."""
    workdir = Path(workdir)
    config_lib.validate(config)
    dataset = data_lib.load_dataset(config.dataset, config.data_dir, config.train_size)
    schedule = config_lib.resolve_schedule(config, len(dataset.split("train")))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_workdir(config, workdir)
    log = (lambda *a: None) if quiet else print

    keys = run_keys(config.seed)
    model, variables = models.create_model(config, dataset.image_shape, dataset.num_classes, keys["init"])
    optimizer = optimizer_lib.make_optimizer(config, schedule.total_steps)
    state = step_lib.init_state(variables, optimizer)

    start_step, records = 0, io.read_jsonl(workdir / "metrics.jsonl")
    done = checkpoints.valid_steps(workdir)
    if done:
        start_step = done[-1]
        if start_step % schedule.steps_per_epoch:
            raise ValueError(f"Checkpoint step {start_step} is not at an epoch boundary "
                             f"({schedule.steps_per_epoch} steps per epoch): was the config changed?")
        state = checkpoints.restore_state(workdir, start_step, jax.eval_shape(lambda: state))
        records = [r for r in records if r["step"] <= start_step]
    if start_step >= schedule.total_steps and (workdir / "summary.json").exists():
        log(f"{workdir}: already finished ({schedule.epochs} epochs, step {start_step}); nothing to do.")
        return io.read_json(workdir / "summary.json")
    if start_step:
        log(f"{workdir}: resuming from step {start_step} (epoch {start_step // schedule.steps_per_epoch}).")

    train = step_lib.DeviceSplit.put(dataset.split("train"), dataset.mean, dataset.std)
    test = step_lib.DeviceSplit.put(dataset.split("test"), dataset.mean, dataset.std)
    train_step = step_lib.make_train_step(model, optimizer, config, dataset.num_classes)
    evaluate = step_lib.make_eval_fn(model, config.eval_batch_size)
    lr_at = optimizer_lib.cosine_schedule(config.lr, schedule.total_steps)
    ckpt = checkpoints.Checkpointer(workdir, keep=config.ckpt_keep,
                                    permanent_every=config.ckpt_every_epochs * schedule.steps_per_epoch)
    n_train = len(dataset.split("train"))
    first_epoch = start_step // schedule.steps_per_epoch
    bar = tqdm(total=schedule.total_steps, initial=start_step, unit="step", disable=quiet or None,
               dynamic_ncols=True, leave=False)
    try:
        for epoch in range(first_epoch, schedule.epochs):
            t0 = time.perf_counter()
            perm = epoch_permutation(keys["data"], epoch, n_train)
            metrics = step_lib.zero_metrics()
            bar.set_description(f"epoch {epoch + 1}/{schedule.epochs}")
            for i in range(schedule.steps_per_epoch):
                state, metrics = train_step(state, metrics, train, perm, i, keys["step"])
                bar.update(1)
            variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
            ev = evaluate(variables, test)
            m = jax.device_get(metrics)
            train_loss = float(m["loss_sum"] / m["count"])
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"Training loss became {train_loss} in epoch {epoch + 1} (steps up to {int(state['step'])}); "
                    f"stopping. The last good checkpoint is kept in {checkpoints.checkpoint_dir(workdir)}.")
            step_now = int(state["step"])
            record = {
                "epoch": epoch + 1, "step": step_now, "lr": float(lr_at(step_now - 1)),
                "train_loss": train_loss, "train_acc": float(m["correct"] / m["count"]),
                "test_loss": float(ev["loss"]), "test_acc": float(ev["acc"]),
                "seconds": time.perf_counter() - t0,
            }
            record["images_per_second"] = m["count"] / record["seconds"]
            records.append(record)
            ckpt.save(step_now, state)
            io.write_jsonl(workdir / "metrics.jsonl", records)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{record['train_acc']:.3f}",
                            test_acc=f"{record['test_acc']:.3f}", img_s=f"{record['images_per_second']:.0f}")
        ckpt.wait()
    finally:
        bar.close()
        ckpt.close()

    summary = {
        "final_test_acc": records[-1]["test_acc"], "final_test_loss": records[-1]["test_loss"],
        "final_train_acc": records[-1]["train_acc"], "epochs": schedule.epochs,
        "steps": schedule.total_steps, "train_seconds": float(sum(r["seconds"] for r in records)),
    }
    io.write_json(workdir / "summary.json", summary)
    log(f"{workdir}: trained {schedule.epochs} epochs; test accuracy {summary['final_test_acc']:.4f}.")
    return summary
