"""`train_and_evaluate(config, workdir)`: the training loop of a run directory.

config -> data (on the devices, uint8) -> model -> jitted data-parallel steps -> per-epoch
evaluation (accuracy, noise fitting, CIFAR-10.1) -> metrics.jsonl and an orbax checkpoint at
the end of every epoch -> summary.json.

Data order comes from (seed, epoch) and randomness from (seed, step), so a run killed at any
moment and restarted with the same command resumes from its newest valid checkpoint and ends
with the same parameters as an uninterrupted run. Re-running a finished run does nothing but
say so; re-running with a different config is an error. A NaN/Inf loss stops the run naming the
step, before that epoch's checkpoint is written.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import ml_collections
from tqdm.auto import tqdm

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models
from spectral_jax.data import noise as noise_lib
from spectral_jax.data.augment import make_augment_fn
from spectral_jax.spectral import noise_fit
from spectral_jax.train import batch as batch_lib
from spectral_jax.train import checkpoints, distill, feeds, parallel
from spectral_jax.train import optimizer as optimizer_lib
from spectral_jax.train import step as step_lib
from spectral_jax.train.metrics_writer import MetricsWriter

# Groups that only affect what is computed after training; changing them keeps the run.
POST_TRAINING_GROUPS = ("analysis",)


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
        if not config_lib.diff(previous, config):
            return  # identical: leave the file (and its timestamp) alone
    config_lib.write_config(config, workdir)


def _get(config, dotted):
    for part in dotted.split("."):
        config = config.get(part) if config is not None else None
    return config


def run_keys(seed: int) -> dict[str, jax.Array]:
    root = jax.random.key(seed)
    return {"init": jax.random.fold_in(root, 0), "data": jax.random.fold_in(root, 1),
            "step": jax.random.fold_in(root, 2)}


def effective_robustness(acc_extra: float, acc_test: float) -> float:
    """ER = acc_10.1 - sigmoid(0.8318 logit(acc_10) - 0.4736) (PAPER_SPEC §4)."""
    a = min(max(acc_test, 1e-6), 1 - 1e-6)
    z = 0.8318 * math.log(a / (1 - a)) - 0.4736
    return acc_extra - 1.0 / (1.0 + math.exp(-z))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *, quiet: bool = False) -> dict:
    """Trains `config` in `workdir` (resuming a partial run). Returns summary.json's dict."""
    workdir = Path(workdir)
    main = parallel.is_main_process()
    log = (lambda *a: None) if (quiet or not main) else print

    # Everything that can fail on bad input fails here, before the workdir is touched.
    config_lib.validate(config)
    streaming = config.dataset in data_lib.STREAMS
    if streaming:
        _check_streaming_config(config)
        dataset = data_lib.load_stream(config.dataset, config.data_dir, config.image_size)
    else:
        dataset = data_lib.load_dataset(config.dataset, config.data_dir, config.train_size)
    schedule = config_lib.resolve_schedule(config, len(dataset.split("train")))
    parallel.check_divisible(config.batch_size)
    parallel.check_divisible(config.eval_batch_size, "eval_batch_size")
    if config.noise.class_index >= dataset.num_classes:
        raise config_lib.ConfigError(f"noise.class_index={config.noise.class_index} but {config.dataset} "
                                     f"has {dataset.num_classes} classes.")
    teacher = None
    if config.teacher_workdir:
        teacher = distill.load_teacher(config.teacher_workdir, dataset.image_shape, dataset.num_classes,
                                       config.dataset)
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
        prepare_workdir(config, workdir)

    mesh = parallel.make_mesh()
    keys = run_keys(config.seed)
    model, variables = models.create_model(config, dataset.image_shape, dataset.num_classes, keys["init"])
    optimizer = optimizer_lib.make_optimizer(config, schedule.total_steps)
    state = step_lib.init_state(variables, optimizer)

    records = io.read_jsonl(workdir / "metrics.jsonl")
    start_step, restored = checkpoints.restore_latest_state(workdir, jax.eval_shape(lambda: state))
    if restored is not None:
        if start_step % schedule.steps_per_epoch and start_step != schedule.total_steps:
            raise ValueError(f"Checkpoint step {start_step} is not at an epoch boundary "
                             f"({schedule.steps_per_epoch} steps per epoch): was the config changed?")
        state = restored
    records = [r for r in records if r["step"] <= start_step]
    done = [start_step] if restored is not None else []
    previous_summary = io.read_json(workdir / "summary.json") if (workdir / "summary.json").exists() else None
    if done and previous_summary and previous_summary.get("last_step") == start_step:
        log(f"{workdir}: already finished (step {start_step}); nothing to do.")
        return previous_summary
    if start_step:
        log(f"{workdir}: resuming from step {start_step} (epoch {start_step // schedule.steps_per_epoch}).")
    if main:
        for path in checkpoints.set_aside_after(workdir, start_step):
            log(f"set aside the damaged checkpoint as {path}")

    noise, noise_info = (None, {}) if streaming else _make_noise(config, dataset)
    if noise_info:
        log(f"noise {config.noise.type}: std of g(x) over the training set {noise_info['noise_feature_std']:.4g}; "
            f"frequency {noise_info['noise_frequency_absolute']:.4g} cycles per unit of g")
    augment = make_augment_fn(config, dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std)
    batch_fn = batch_lib.make_batch_fn(config, dataset.num_classes, augment=augment, noise=noise,
                                       teacher=teacher[0] if teacher else None)
    if streaming:
        feed = feeds.StreamFeed(dataset, model, optimizer, config, mesh, batch_fn)
    else:
        feed = feeds.DeviceFeed(dataset, model, optimizer, config, mesh, batch_fn, noise,
                                schedule.steps_per_epoch, keys["data"])
    aux = parallel.put_replicated({"teacher": teacher[1]} if teacher else {}, mesh)
    state = parallel.put_replicated(state, mesh)
    step_key = parallel.put_replicated(keys["step"], mesh)
    new_metrics = jax.jit(step_lib.zero_metrics, out_shardings=parallel.replicated(mesh))
    ckpt = checkpoints.Checkpointer(workdir, keep=config.ckpt_keep,
                                    permanent_every=config.ckpt_every_epochs * schedule.steps_per_epoch)
    writer = MetricsWriter(workdir, records, enabled=main)
    bar = tqdm(total=schedule.total_steps, initial=start_step, unit="step", disable=quiet or not main or None,
               dynamic_ncols=True, leave=False)
    stopped_early = ""
    try:
        for epoch in range(start_step // schedule.steps_per_epoch, schedule.epochs):
            # The whole epoch runs with implicit transfers disallowed: the steps take everything
            # from the devices, and results come back only through explicit device_get.
            with jax.transfer_guard("disallow"):
                record, state = _run_epoch(epoch, state, schedule, config.lr, bar, feed, new_metrics, done,
                                           workdir, step_key, aux)
                variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
                record.update(_eval_record(feed.evaluate(variables, "test"), "test", noise, ""))
                if noise is not None and noise.active:
                    record.update(_eval_record(feed.evaluate(variables, "train"), "train_eval", noise, "train_"))
                if "extra" in feed.splits:
                    record.update(_eval_record(feed.evaluate(variables, "extra", with_noise=False), "extra", None, ""))
                    record["effective_robustness"] = effective_robustness(record["extra_acc"], record["test_acc"])
            record["seconds"] = time.perf_counter() - record.pop("_t0")
            record["time"] = time.time()  # wall clock at the end of the epoch (throughput over epochs)
            with jax.transfer_guard("allow"):  # checkpointing is a deliberate device->host copy
                ckpt.save(record["step"], state)
            done.append(record["step"])
            writer.write(record)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_acc']:.3f}",
                            test_acc=f"{record['test_acc']:.3f}", img_s=f"{record['images_per_second']:.0f}")
            stopped_early = _early_stop(config, record)
            if stopped_early:
                log(f"stopping early after epoch {epoch + 1}: {stopped_early}")
                break
        ckpt.wait()
    finally:
        bar.close()
        ckpt.close()
        writer.close()

    summary = _summary(config, writer.records, schedule, noise_info, stopped_early)
    if main:
        io.write_json(workdir / "summary.json", summary)
    log(f"{workdir}: trained to step {summary['last_step']}; test accuracy {summary['final_test_acc']:.4f}"
        + (f"; largest eps {summary['max_epsilon']:.3f}" if "max_epsilon" in summary else "") + ".")
    return summary


def _run_epoch(epoch: int, state, schedule, lr: float, bar, feed, new_metrics, done: list[int], workdir,
               step_key, aux):
    """Runs the steps of 0-based `epoch`; -> (record with the training metrics, state)."""
    t0 = time.perf_counter()
    first, last = epoch * schedule.steps_per_epoch, schedule.epoch_end(epoch)
    bar.set_description(f"epoch {epoch + 1}/{schedule.epochs}")
    state, metrics = feed.run_epoch(state, new_metrics(), epoch, last - first, step_key, aux, lambda: bar.update(1))
    m = parallel.to_host(metrics)
    seconds = time.perf_counter() - t0
    if m["nonfinite_step"] >= 0:
        raise FloatingPointError(
            f"The training loss became NaN/Inf at step {int(m['nonfinite_step'])} (epoch {epoch + 1}); stopping. "
            f"The last good checkpoint is kept: {checkpoints.checkpoint_dir(workdir)}/{done[-1] if done else '(none)'}.")
    record = {"epoch": epoch + 1, "step": last, "lr": optimizer_lib.cosine_lr(lr, last - 1, schedule.total_steps),
              "train_loss": float(m["loss_sum"] / m["count"]), "train_acc": float(m["correct"] / m["count"]),
              "images_per_second": float(m["count"]) / seconds, "_t0": t0}
    if m["max_eps"] > 0:
        record["max_epsilon"] = float(m["max_eps"])
    return record, state


def _check_streaming_config(config) -> None:
    if config.noise.type != "none":
        raise config_lib.ConfigError(f"{config.dataset} is streamed: noise fitting (noise.type) needs an in-memory "
                                     f"dataset, since it evaluates the whole training set every epoch.")
    if config.train_size:
        raise config_lib.ConfigError(f"{config.dataset} is streamed: train_size is not supported for it.")


def _make_noise(config, dataset):
    """The run's label noise (None when off) and what to log about it once."""
    if config.noise.type == "none":
        return None, {}
    base = noise_lib.make_label_noise(config.noise, dataset.image_shape, dataset.num_classes, feature_std=1.0)
    g_std = noise_lib.feature_std(base, dataset.split("train").images, dataset.mean, dataset.std)
    noise = noise_lib.make_label_noise(config.noise, dataset.image_shape, dataset.num_classes, feature_std=g_std)
    return noise, {"noise_feature_std": g_std, "noise_frequency_absolute": noise.frequency}


def _eval_record(s: dict, name: str, noise, nf: str) -> dict:
    """Means of evaluation sums `s`: `{name}_loss`, `{name}_acc` and, with active noise, the
    noise-fitting keys prefixed `nf` (`clean_loss`, ... on the test set; `train_clean_loss`, ...)."""
    n = float(s["count"])
    out = {f"{name}_loss": float(s["loss"]) / n, f"{name}_acc": float(s["correct"]) / n}
    if noise is None or not noise.active:
        return out
    out.update(_noise_keys(nf, s, ""))
    if noise.class_index >= 0:
        out.update(_noise_keys(nf + "class_", s, "class_"))
    return out


def _noise_keys(name: str, s: dict, src: str) -> dict:
    n = max(float(s[f"{src}count"]), 1.0)
    clean, noisy = float(s[f"{src}loss"]) / n, float(s[f"{src}noisy"]) / n
    return {f"{name}clean_loss": clean, f"{name}noisy_loss": noisy, f"{name}noise_fitting": clean - noisy,
            f"{name}oracle_noise_fitting": float(s[f"{src}oracle"]) / n,
            f"{name}oracle_uniform_noise_fitting": float(s[f"{src}oracle_uniform"]) / n}


def _early_stop(config, record: dict) -> str:
    if config.max_accuracy > 0 and record["test_acc"] >= config.max_accuracy:
        return f"test accuracy {record['test_acc']:.4f} >= max_accuracy {config.max_accuracy}"
    if config.min_loss > 0 and record["train_loss"] <= config.min_loss:
        return f"training loss {record['train_loss']:.4f} <= min_loss {config.min_loss}"
    return ""


def _summary(config, records: list[dict], schedule, noise_info: dict, stopped_early: str) -> dict:
    last = records[-1]
    summary = {
        "final_test_acc": last["test_acc"], "final_test_loss": last["test_loss"],
        "final_train_acc": last["train_acc"], "final_train_loss": last["train_loss"],
        "last_step": last["step"], "epochs_done": last["epoch"], "total_steps": schedule.total_steps,
        "stopped_early": stopped_early, "train_seconds": float(sum(r["seconds"] for r in records)),
    }
    if "effective_robustness" in last:
        summary.update(final_extra_acc=last["extra_acc"], final_effective_robustness=last["effective_robustness"])
    if "noise_fitting" in last:
        value, epoch = noise_fit.minimum_over_epochs(records)
        burn_value, burn_epoch = noise_fit.minimum_over_epochs(records, after_epoch=config.noise.min_after_epoch)
        summary.update(
            min_noise_fitting=value, min_noise_fitting_epoch=epoch,
            min_noise_fitting_after_burn_in=burn_value, min_noise_fitting_after_burn_in_epoch=burn_epoch,
            final_noise_fitting=last["noise_fitting"], final_train_noise_fitting=last["train_noise_fitting"],
            oracle_noise_fitting=last["oracle_noise_fitting"],
            oracle_uniform_noise_fitting=last["oracle_uniform_noise_fitting"],
            train_oracle_noise_fitting=last["train_oracle_noise_fitting"],
            train_oracle_uniform_noise_fitting=last["train_oracle_uniform_noise_fitting"],
            max_epsilon=max(r.get("max_epsilon", 0.0) for r in records), **noise_info,
        )
    return summary
