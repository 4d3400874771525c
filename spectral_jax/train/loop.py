"""`train_and_evaluate(config, workdir)`: the training loop of a run directory.

    setup (every check, before compute) -> lock the run directory -> restore or init -> epochs:
    train, evaluate, log, checkpoint -> summary.json

Data order comes from (seed, epoch) and randomness from (seed, step), so a run killed at any
moment and restarted with the same command resumes from its newest valid checkpoint and ends
with the same parameters as an uninterrupted run. Re-running a finished run does nothing but
say so; re-running with a different config is an error, except for a longer duration, which
extends the run. A NaN/Inf loss stops the run naming the step, before that epoch's checkpoint
is written. All device work is issued from this thread. Only one trainer (process 0 of a
multi-process run) owns a run directory at a time; a second one fails at once naming it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
from tqdm.auto import tqdm

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models, parallel
from spectral_jax.data import noise as noise_lib
from spectral_jax.data.augment import make_augment_fn
from spectral_jax.errors import ConfigError, DamagedFile
from spectral_jax.train import checkpoints, distill, feeds, records
from spectral_jax.train import batch as batch_lib
from spectral_jax.train import optimizer as optimizer_lib
from spectral_jax.train import step as step_lib
from spectral_jax.train.metrics_writer import MetricsWriter

# Groups that only affect what is computed after training; changing them keeps the run.
POST_TRAINING_GROUPS = ("analysis",)
# Keys a resumed run may change: a longer duration extends it.
DURATION_KEYS = ("epochs", "steps", "schedule_restart_step")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *, quiet: bool = False,
                       restart_schedule: bool = False) -> dict:
    """Trains `config` in `workdir` (resuming or extending a partial run). Returns summary.json's dict.

    `restart_schedule`: when extending a run, start a fresh cosine cycle at the resumed step
    instead of following one cosine over the whole new duration."""
    run = _setup(config, Path(workdir), quiet)
    # One trainer per run directory, taken before anything is written (docs/run_directory.md).
    with io.RunLock(run.workdir, "train", enabled=run.main):
        return _train(run, restart_schedule)


def _train(run: _Run, restart_schedule: bool) -> dict:
    config = run.config
    if run.noise_info:
        run.log(f"noise {config.noise.type}: std of g(x) over the training set {run.noise_info['noise_feature_std']:.4g}; "
                f"frequency {run.noise_info['noise_frequency_absolute']:.4g} cycles per unit of g")
    state, start_step, proven = _restore_or_init(run, restart_schedule)
    history = MetricsWriter.recover(run.workdir, start_step, proven, enabled=run.main, log=run.log)
    summary = _finished_summary(run, start_step, history)
    if summary is not None:
        run.log(f"{run.workdir}: already finished (step {start_step}); nothing to do.")
        return summary
    if start_step:
        run.log(f"{run.workdir}: resuming from step {start_step} (epoch {start_step // run.schedule.steps_per_epoch}).")

    mesh = parallel.make_mesh()
    feed = feeds.make_feed(run.dataset, run.model, config, run.schedule, mesh, run.batch_fn, run.noise,
                           run.keys["data"])
    state = parallel.put_replicated(state, mesh)
    aux = {"hyper": step_lib.hyperparameters(config), **({"teacher": run.teacher[1]} if run.teacher else {})}
    aux = parallel.put_replicated(aux, mesh)
    step_key = parallel.put_replicated(run.keys["step"], mesh)
    new_metrics = jax.jit(step_lib.zero_metrics, out_shardings=parallel.replicated(mesh))
    ckpt = checkpoints.Checkpointer(run.workdir, keep=config.ckpt_keep,
                                    permanent_every=config.ckpt_every_epochs * run.schedule.steps_per_epoch,
                                    identity=run.identity)
    writer = MetricsWriter(run.workdir, history, enabled=run.main)
    bar = tqdm(total=run.schedule.total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=False,
               disable=run.quiet or not run.main or None)
    last_good, stopped_early = start_step, ""
    try:
        for epoch in range(start_step // run.schedule.steps_per_epoch, run.schedule.epochs):
            t0 = time.perf_counter()
            bar.set_description(f"epoch {epoch + 1}/{run.schedule.epochs}")
            # The epoch runs with implicit transfers disallowed: the steps take everything from
            # the devices, and results come back only through explicit copies (parallel.to_host).
            with jax.transfer_guard("disallow"):
                state, sums = feed.run_epoch(state, new_metrics(), epoch, run.schedule.epoch_steps(epoch), step_key,
                                             aux, lambda: bar.update(1))
                sums = parallel.to_host(sums)
                train_seconds = time.perf_counter() - t0
                _check_finite(sums, epoch, run.workdir, last_good)
                evaluation = _evaluate(feed, {"params": state["params"], "batch_stats": state["batch_stats"]})
            step = run.schedule.epoch_end(epoch)
            record = {**records.train_record(sums, epoch + 1, step, float(run.lr_schedule(step - 1)), train_seconds),
                      **evaluation, "seconds": time.perf_counter() - t0, "time": time.time()}
            # The record is published before its checkpoint: a resume drops records past the step it
            # restores, and rebuilds the log from the records saved with that checkpoint.
            writer.write(record)
            with jax.transfer_guard("allow"):  # checkpointing is a deliberate device->host copy
                ckpt.save(step, state, writer.records)
            last_good = step
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_acc']:.3f}",
                            test_acc=f"{record['test_acc']:.3f}", img_s=f"{record['images_per_second']:.0f}")
            stopped_early = records.early_stop_reason(config, record)
            if stopped_early:
                run.log(f"stopping early after epoch {epoch + 1}: {stopped_early}")
                break
        ckpt.wait()
    finally:
        bar.close()
        ckpt.close()
        writer.close()

    summary = records.run_summary(config, writer.records, run.schedule.total_steps, run.noise_info, stopped_early)
    if run.main:
        io.write_json(run.workdir / "summary.json", summary)
    run.log(f"{run.workdir}: trained to step {summary['last_step']}; test accuracy {summary['final_test_acc']:.4f}"
            + (f"; largest eps {summary['max_epsilon']:.3f}" if "max_epsilon" in summary else "") + ".")
    return summary


@dataclasses.dataclass
class _Run:
    """Everything a run needs that does not change during training."""

    config: ml_collections.ConfigDict
    workdir: Path
    quiet: bool
    main: bool
    dataset: data_lib.Dataset
    schedule: config_lib.Schedule
    teacher: tuple | None
    keys: dict[str, jax.Array]
    model: models.PureModel
    abstract_variables: dict
    noise: noise_lib.LabelNoise | None
    noise_info: dict
    identity: dict | None = None
    batch_fn: Callable | None = None
    optimizer: Any = None
    lr_schedule: Callable | None = None

    def log(self, *args) -> None:
        if self.main and not self.quiet:
            print(*args)


def _setup(config: ml_collections.ConfigDict, workdir: Path, quiet: bool) -> _Run:
    """Every check that can fail on bad input, before the workdir is touched or anything compiled."""
    config_lib.validate(config)
    dataset = data_lib.open_dataset(config)
    if dataset.streamed and config.noise.type != "none":
        raise ConfigError(f"{config.dataset} is streamed: noise fitting (noise.type) needs an in-memory "
                          f"dataset, since it evaluates the whole training set every epoch.")
    if config.noise.class_index >= dataset.num_classes:
        raise ConfigError(f"noise.class_index={config.noise.class_index} but {config.dataset} "
                          f"has {dataset.num_classes} classes.")
    schedule = config_lib.resolve_schedule(config, len(dataset.split("train")))
    parallel.check_divisible(config.batch_size)
    parallel.check_divisible(config.eval_batch_size, "eval_batch_size")
    teacher = None
    if config.teacher_workdir:
        teacher = distill.load_teacher(config.teacher_workdir, dataset.image_shape, dataset.num_classes,
                                       config.dataset)
    _check_workdir_config(config, workdir)
    keys = run_keys(config.seed)
    model, abstract_variables = models.create_model(config, dataset.image_shape, dataset.num_classes)
    noise, noise_info = _make_noise(config, dataset)
    return _Run(config, workdir, quiet, parallel.is_main_process(), dataset, schedule, teacher, keys, model,
                abstract_variables, noise, noise_info)


def run_keys(seed: int) -> dict[str, jax.Array]:
    root = jax.random.key(seed)
    return {"init": jax.random.fold_in(root, 0), "data": jax.random.fold_in(root, 1),
            "step": jax.random.fold_in(root, 2)}


def _check_workdir_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """An existing run in `workdir` must have the same config, up to post-training groups and a
    change of duration (which extends it)."""
    if not config_lib.is_run_dir(workdir):
        return
    previous = config_lib.load_run_config(workdir)
    changed = [k for k in config_lib.diff(previous, config, ignore=POST_TRAINING_GROUPS) if k not in DURATION_KEYS]
    if changed:
        details = "; ".join(f"{k}: {_get(previous, k)!r} -> {_get(config, k)!r}" for k in changed)
        raise ConfigError(f"{workdir} already holds a run with a different config ({details}). "
                          f"Use a new --workdir, or the run's own settings (spectral-jax train --workdir {workdir}).")


def _get(config, dotted):
    for part in dotted.split("."):
        config = config.get(part) if config is not None else None
    return config


def _restore_or_init(run: _Run, restart_schedule: bool) -> tuple[dict, int, list[dict]]:
    """(state, step, the metrics records saved with it) of the newest valid checkpoint, or a fresh
    state; then config.json is written (only now, so a refused extension leaves the run as it was)."""
    config, schedule = run.config, run.schedule
    abstract_state = _abstract_state(run)
    run.identity = checkpoints.identity(config.model, abstract_state)
    start_step, restored, proven = checkpoints.restore_latest_state(run.workdir, abstract_state, config.model)
    if start_step > schedule.total_steps:
        raise ConfigError(f"{run.workdir} is already at step {start_step}, past the {schedule.total_steps} steps "
                          f"this config asks for; a run can be extended, not shortened.")
    if start_step % schedule.steps_per_epoch and start_step != schedule.total_steps:
        raise ConfigError(f"Checkpoint step {start_step} is not at an epoch boundary "
                          f"({schedule.steps_per_epoch} steps per epoch): was the config changed?")
    if restart_schedule:
        if start_step == 0 or start_step >= schedule.total_steps:
            raise ConfigError("--restart_schedule starts a new cosine cycle where a run is extended: give a longer "
                              "duration (--config.epochs=N) for a run that has trained some steps.")
        config.schedule_restart_step = start_step
    run.optimizer, run.lr_schedule = optimizer_lib.make_optimizer(config, schedule.total_steps)
    augment = make_augment_fn(config, run.dataset.image_shape, run.dataset.num_classes, run.dataset.mean,
                              run.dataset.std)
    run.batch_fn = batch_lib.make_batch_fn(config, run.dataset.num_classes, augment=augment, noise=run.noise,
                                           teacher=run.teacher[0] if run.teacher else None)
    if run.main:
        run.workdir.mkdir(parents=True, exist_ok=True)
        _write_config(config, run.workdir, run.log)
        checkpoints.discard_unfinished(run.workdir)
        for path in checkpoints.set_aside_after(run.workdir, start_step):
            run.log(f"set aside the damaged checkpoint as {path}")
    if restored is not None:
        return restored, start_step, proven
    _, variables = models.create_model(config, run.dataset.image_shape, run.dataset.num_classes, run.keys["init"])
    return step_lib.init_state(variables, run.optimizer), 0, []


def _abstract_state(run: _Run) -> dict:
    """Shapes and dtypes of the train state (the restore target; nothing is initialized)."""
    optimizer, _ = optimizer_lib.make_optimizer(run.config, run.schedule.total_steps)
    return jax.eval_shape(lambda v: step_lib.init_state(v, optimizer), run.abstract_variables)


def _write_config(config: ml_collections.ConfigDict, workdir: Path, log) -> None:
    if config_lib.is_run_dir(workdir):
        previous = config_lib.load_run_config(workdir)
        changed = config_lib.diff(previous, config)
        if not changed:
            return  # identical: leave the file (and its timestamp) alone
        extended = [k for k in changed if k in DURATION_KEYS]
        if extended:
            log(f"{workdir}: extending the run: " + "; ".join(f"{k} {_get(previous, k)!r} -> {_get(config, k)!r}"
                                                             for k in extended))
    config_lib.write_config(config, workdir)


def _finished_summary(run: _Run, start_step: int, history: list[dict]) -> dict | None:
    """summary.json's dict when the run is already complete at `start_step` (its duration done, or
    its last record met the early-stopping rule), else None. A complete run whose summary.json is
    missing (killed before writing it), stale or damaged gets it rebuilt from `history`."""
    if not start_step or not history or history[-1]["step"] != start_step:
        return None
    stopped_early = records.early_stop_reason(run.config, history[-1])
    if start_step < run.schedule.total_steps and not stopped_early:
        return None
    path = run.workdir / "summary.json"
    if path.exists():
        try:
            summary = io.read_json(path)
            if summary.get("last_step") == start_step:
                return summary
        except DamagedFile as e:
            run.log(f"{path} is damaged ({e.problem}); rebuilding it from metrics.jsonl.")
    summary = records.run_summary(run.config, history, run.schedule.total_steps, run.noise_info, stopped_early)
    if run.main:
        io.write_json(path, summary)
    return summary


def _check_finite(sums: dict, epoch: int, workdir: Path, last_good: int) -> None:
    if sums["nonfinite_step"] >= 0:
        raise FloatingPointError(
            f"The training loss became NaN/Inf at step {int(sums['nonfinite_step'])} (epoch {epoch + 1}); stopping. "
            f"The last good checkpoint is kept: {checkpoints.checkpoint_dir(workdir)}/{last_good or '(none)'}.")


def _evaluate(feed, variables) -> dict:
    """The evaluation part of an epoch's record: test accuracy and loss (with noise fitting on a
    noise run), training-set noise fitting, and the extra split's accuracy (CIFAR-10.1)."""
    out = records.eval_record(feed.evaluate(variables, "test"), "test", noise_prefix="")
    if feed.noise_active:
        out.update(records.eval_record(feed.evaluate(variables, "train"), "train_eval", noise_prefix="train_"))
    if "extra" in feed.splits:
        out.update(records.eval_record(feed.evaluate(variables, "extra", with_noise=False), "extra"))
        out["effective_robustness"] = records.effective_robustness(out["extra_acc"], out["test_acc"])
    return out


def _make_noise(config, dataset):
    """The run's label noise (None when off) and what to log about it once."""
    if config.noise.type == "none":
        return None, {}
    base = noise_lib.make_label_noise(config.noise, dataset.image_shape, dataset.num_classes, feature_std=1.0)
    g_std = noise_lib.feature_std(base, dataset.split("train").images, dataset.mean, dataset.std)
    noise = noise_lib.make_label_noise(config.noise, dataset.image_shape, dataset.num_classes, feature_std=g_std)
    return noise, {"noise_feature_std": g_std, "noise_frequency_absolute": noise.frequency}
