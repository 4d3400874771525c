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

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models, parallel
from spectral_jax.data import noise as noise_lib
from spectral_jax.data.augment import make_augment_fn
from spectral_jax.errors import ConfigError, DamagedFile, TrainingDiverged
from spectral_jax.train import checkpoints, distill, ensemble, feeds, records
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
    if config.get("ensemble", 1) > 1:
        raise ConfigError(f"ensemble={config.ensemble} trains several runs: use "
                          f"train_runs(*ensemble.member_runs(config, workdir)) (or spectral-jax train).")
    return train_runs([config], [workdir], quiet=quiet, restart_schedule=restart_schedule)[0]


def train_runs(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str | Path], *,
               quiet: bool = False, restart_schedule: bool = False) -> list[dict]:
    """Trains each config in its own run directory; several runs form an ensemble trained in one
    program (`jax.vmap` over their states, see `ensemble.check_members`), each writing the same
    files a separate run writes. Returns their summary.json dicts."""
    if len(configs) != len(workdirs) or not configs:
        raise ConfigError(f"train_runs needs one run directory per config, got {len(configs)} and {len(workdirs)}.")
    if len(configs) > 1:
        ensemble.check_members(configs, workdirs)
    runs: list[_Run] = []
    for config, workdir in zip(configs, workdirs):
        runs.append(_setup(config, Path(workdir), quiet, runs[0] if runs else None))
    # One trainer per run directory, taken before anything is written (docs/run_directory.md).
    with contextlib.ExitStack() as locks:
        for run in runs:
            locks.enter_context(io.RunLock(run.workdir, "train", enabled=run.main))
        # Members stopped between their saves: the ones behind catch up first (their epochs are
        # the same functions of (seed, step) whether trained alone or together).
        newest = [max(checkpoints.valid_steps(run.workdir, warn=False), default=0) for run in runs]
        if len(set(newest)) > 1:
            _train([run for run, n in zip(runs, newest) if n < max(newest)], False, stop_at=max(newest))
        return _train(runs, restart_schedule)


def _train(runs: list[_Run], restart_schedule: bool, stop_at: int | None = None) -> list[dict]:
    """Trains `runs` (one, or an ensemble) from their common newest checkpoint; with `stop_at`,
    only up to that step (a catch-up: no summary is written)."""
    lead, config = runs[0], runs[0].config
    members = len(runs) if len(runs) > 1 else 0  # 0: a single run, no member axis
    if lead.noise_info:
        lead.log(f"noise {config.noise.type}: std of g(x) over the training set "
                 f"{lead.noise_info['noise_feature_std']:.4g}; frequency "
                 f"{lead.noise_info['noise_frequency_absolute']:.4g} cycles per unit of g")
    states, start_step, histories = _restore_or_init(runs, restart_schedule)
    summaries = [_finished_summary(run, start_step, history) for run, history in zip(runs, histories)]
    if stop_at is None and all(s is not None for s in summaries):
        for run in runs:
            run.log(f"{run.workdir}: already finished (step {start_step}); nothing to do.")
        return summaries
    if start_step:
        for run in runs:
            run.log(f"{run.workdir}: resuming from step {start_step} "
                    f"(epoch {start_step // run.schedule.steps_per_epoch}).")

    mesh, schedule = parallel.make_mesh(), lead.schedule
    feed = feeds.make_feed(lead.dataset, lead.model, config, schedule, mesh, lead.batch_fn, lead.noise,
                           _stack([run.keys["data"] for run in runs], members), members)
    state = parallel.put_replicated(_stack(states, members), mesh)
    hyper = _stack([step_lib.hyperparameters(run.config) for run in runs], members)
    aux = parallel.put_replicated({"hyper": hyper, **({"teacher": lead.teacher[1]} if lead.teacher else {})}, mesh)
    step_key = parallel.put_replicated(_stack([run.keys["step"] for run in runs], members), mesh)
    def zero():
        sums = step_lib.zero_metrics()
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (members, *x.shape)), sums) if members else sums

    new_metrics = jax.jit(zero, out_shardings=parallel.replicated(mesh))
    # Everything opened here is closed on the way out, each even when another's close fails.
    with contextlib.ExitStack() as closing:
        writers, ckpts = [], []
        for run, history in zip(runs, histories):
            writers.append(closing.enter_context(contextlib.closing(
                MetricsWriter(run.workdir, history, enabled=run.main))))
            ckpts.append(closing.enter_context(contextlib.closing(checkpoints.Checkpointer(
                run.workdir, keep=run.config.ckpt_keep, identity=run.identity,
                permanent_every=run.config.ckpt_every_epochs * schedule.steps_per_epoch))))
        bar = closing.enter_context(contextlib.closing(tqdm(
            total=schedule.total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=False,
            disable=lead.quiet or not lead.main or None)))
        last_good, stopped_early = start_step, ""
        for epoch in range(start_step // schedule.steps_per_epoch, schedule.epochs):
            t0 = time.perf_counter()
            bar.set_description(f"epoch {epoch + 1}/{schedule.epochs}")
            # The epoch runs with implicit transfers disallowed: the steps take everything from
            # the devices, and results come back only through explicit copies (parallel.to_host).
            with jax.transfer_guard("disallow"):
                state, sums = feed.run_epoch(state, new_metrics(), epoch, schedule.epoch_steps(epoch), step_key, aux,
                                             lambda: bar.update(1))
                sums = parallel.to_host(sums)
                train_seconds = time.perf_counter() - t0
                for i, run in enumerate(runs):
                    _check_finite(_member(sums, i, members), epoch, run.workdir, last_good)
                evaluation = _evaluate(feed, {"params": state["params"], "batch_stats": state["batch_stats"]})
                host_state = parallel.to_host(state) if members else state  # one copy for every member
            step = schedule.epoch_end(epoch)
            for i, (run, writer, ckpt) in enumerate(zip(runs, writers, ckpts)):
                record = {**records.train_record(_member(sums, i, members), epoch + 1, step,
                                                 float(run.lr_schedule(step - 1)), train_seconds),
                          **_eval_record(_member(evaluation, i, members), "extra" in feed.splits),
                          "seconds": time.perf_counter() - t0, "time": time.time()}
                # The record is published before its checkpoint: a resume drops records past the
                # step it restores, and rebuilds the log from the records saved with that checkpoint.
                writer.write(record)
                with jax.transfer_guard("allow"):  # checkpointing is a deliberate device->host copy
                    ckpt.save(step, _member(host_state, i, members), writer.records)
            last_good = step
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_acc']:.3f}",
                            test_acc=f"{record['test_acc']:.3f}", img_s=f"{record['images_per_second']:.0f}")
            stopped_early = records.early_stop_reason(config, record)  # off for ensembles (check_members)
            if stopped_early:
                lead.log(f"stopping early after epoch {epoch + 1}: {stopped_early}")
                break
            if stop_at is not None and step >= stop_at:
                break
        for ckpt in ckpts:
            ckpt.wait()
    if stop_at is not None:
        return []

    summaries = []
    for run, writer in zip(runs, writers):
        summary = records.run_summary(run.config, writer.records, schedule.total_steps, run.noise_info, stopped_early)
        if run.main:
            io.write_json(run.workdir / "summary.json", summary)
        run.log(f"{run.workdir}: trained to step {summary['last_step']}; test accuracy "
                f"{summary['final_test_acc']:.4f}"
                + (f"; largest eps {summary['max_epsilon']:.3f}" if "max_epsilon" in summary else "") + ".")
        summaries.append(summary)
    return summaries


def _stack(trees: list, members: int):
    """The members' host pytrees stacked on a leading axis (PRNG keys too); a single run's tree
    as it is."""
    if not members:
        return trees[0]

    def stack(*xs):
        if isinstance(xs[0], jax.Array) and jax.dtypes.issubdtype(xs[0].dtype, jax.dtypes.prng_key):
            data = np.stack([np.asarray(jax.random.key_data(x)) for x in xs])
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(xs[0]))
        return np.stack([np.asarray(x) for x in xs])

    return jax.tree.map(stack, *trees)


def _member(tree, i: int, members: int):
    """Member i's part of a host tree with a leading member axis (a single run's tree as it is)."""
    return jax.tree.map(lambda x: x[i], tree) if members else tree


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


def _setup(config: ml_collections.ConfigDict, workdir: Path, quiet: bool, lead: _Run | None = None) -> _Run:
    """Every check that can fail on bad input, before the workdir is touched or anything compiled.
    `lead`: the first member of an ensemble, whose dataset, teacher, model and label noise the
    others share (they differ only in config.ENSEMBLE_KEYS, see `ensemble.check_members`)."""
    config_lib.validate(config)
    dataset = lead.dataset if lead else data_lib.open_dataset(config)
    if dataset.streamed and config.noise.type != "none":
        raise ConfigError(f"{config.dataset} is streamed: noise fitting (noise.type) needs an in-memory "
                          f"dataset, since it evaluates the whole training set every epoch.")
    if config.noise.class_index >= dataset.num_classes:
        raise ConfigError(f"noise.class_index={config.noise.class_index} but {config.dataset} "
                          f"has {dataset.num_classes} classes.")
    schedule = config_lib.resolve_schedule(config, len(dataset.split("train")))
    parallel.check_divisible(config.batch_size)
    parallel.check_divisible(config.eval_batch_size, "eval_batch_size")
    teacher = lead.teacher if lead else None
    if config.teacher_workdir and not lead:
        teacher = distill.load_teacher(config.teacher_workdir, dataset.image_shape, dataset.num_classes,
                                       config.dataset)
    _check_workdir_config(config, workdir)
    keys = run_keys(config.seed)
    if lead:
        model, abstract_variables, noise, noise_info = lead.model, lead.abstract_variables, lead.noise, lead.noise_info
    else:
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


def _restore_or_init(runs: list[_Run], restart_schedule: bool) -> tuple[list[dict], int, list[list[dict]]]:
    """(states, step, metrics histories) of the newest checkpoint every run has, or fresh states;
    then config.json is written (only now, so a refused extension leaves a run as it was). Members
    of an ensemble killed between their saves resume together from their newest common step."""
    schedule = runs[0].schedule
    abstract = [_abstract_state(run) for run in runs]
    for run, a in zip(runs, abstract):
        run.identity = checkpoints.identity(run.config.model, a)
    at_most = None
    while True:
        restored = [checkpoints.restore_latest_state(run.workdir, a, run.config.model, at_most)
                    for run, a in zip(runs, abstract)]
        start_step = min(step for step, _, _ in restored)
        if all(step == start_step for step, _, _ in restored):
            break
        at_most = start_step
    if start_step > schedule.total_steps:
        raise ConfigError(f"{runs[0].workdir} is already at step {start_step}, past the {schedule.total_steps} steps "
                          f"this config asks for; a run can be extended, not shortened.")
    if start_step % schedule.steps_per_epoch and start_step != schedule.total_steps:
        raise ConfigError(f"Checkpoint step {start_step} is not at an epoch boundary "
                          f"({schedule.steps_per_epoch} steps per epoch): was the config changed?")
    if restart_schedule and (start_step == 0 or start_step >= schedule.total_steps):
        raise ConfigError("--restart_schedule starts a new cosine cycle where a run is extended: give a longer "
                          "duration (--config.epochs=N) for a run that has trained some steps.")
    lead, dataset = runs[0], runs[0].dataset
    augment = make_augment_fn(lead.config, dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std)
    # One batch function for every member (what may differ between them comes through aux["hyper"]).
    batch_fn = batch_lib.make_batch_fn(lead.config, dataset.num_classes, augment=augment, noise=lead.noise,
                                       teacher=lead.teacher[0] if lead.teacher else None)
    cycle = _cycle_start(lead.workdir, lead.config, start_step, restart_schedule)  # one schedule for all members
    states, histories = [], []
    for run, (_, state, proven) in zip(runs, restored):
        config = run.config
        config.schedule_restart_step = cycle
        run.optimizer, run.lr_schedule = optimizer_lib.make_optimizer(config, schedule.total_steps)
        run.batch_fn = batch_fn
        if run.main:
            run.workdir.mkdir(parents=True, exist_ok=True)
            _write_config(config, run.workdir, run.log)
            checkpoints.discard_unfinished(run.workdir)
            for path in checkpoints.set_aside_after(run.workdir, start_step):
                run.log(f"set aside the checkpoint past the step the run resumes from as {path}")
        if state is None:
            _, variables = models.create_model(config, run.dataset.image_shape, run.dataset.num_classes,
                                               run.keys["init"])
            state = step_lib.init_state(variables, run.optimizer)
        states.append(state)
        histories.append(MetricsWriter.recover(run.workdir, start_step, proven, enabled=run.main, log=run.log))
    return states, start_step, histories


def _cycle_start(workdir: Path, config: ml_collections.ConfigDict, start_step: int, restart_schedule: bool) -> int:
    """Where the current cosine cycle starts (`schedule_restart_step`). A rerun with the duration
    config.json already has keeps the cycle recorded there if it began at or before the resumed
    step (an interrupted extension, rerun with or without --restart_schedule, or ensemble members
    catching up); otherwise --restart_schedule starts one at the resumed step, and without it the
    config's own value stands."""
    if config_lib.is_run_dir(workdir):
        previous = config_lib.load_run_config(workdir)
        same_duration = all(previous.get(k) == config.get(k) for k in ("epochs", "steps"))
        if same_duration and 0 < previous.get("schedule_restart_step", 0) <= start_step:
            return previous.schedule_restart_step
    return start_step if restart_schedule else config.get("schedule_restart_step", 0)


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
        raise TrainingDiverged(
            f"The training loss became NaN/Inf at step {int(sums['nonfinite_step'])} (epoch {epoch + 1}); stopping. "
            f"The last good checkpoint is kept: {checkpoints.checkpoint_dir(workdir)}/{last_good or '(none)'}. "
            f"Training is deterministic, so the same config diverges again: try a lower --config.lr or a "
            f"smaller --config.grad_clip_norm in a new --workdir.")


def _evaluate(feed, variables) -> dict[str, dict]:
    """The evaluation sums of an epoch (host numbers, a leading member axis for ensembles): the
    test split (with noise fitting on a noise run), the training set on a noise run, and the
    extra split (CIFAR-10.1) without noise."""
    sums = {"test": feed.evaluate(variables, "test")}
    if feed.noise_active:
        sums["train"] = feed.evaluate(variables, "train")
    if "extra" in feed.splits:
        sums["extra"] = feed.evaluate(variables, "extra", with_noise=False)
    return sums


def _eval_record(sums: dict[str, dict], extra: bool) -> dict:
    """The evaluation part of one run's record: test accuracy and loss (and noise fitting),
    training-set noise fitting, the extra split's accuracy and the effective robustness."""
    out = records.eval_record(sums["test"], "test", noise_prefix="")
    if "train" in sums:
        out.update(records.eval_record(sums["train"], "train_eval", noise_prefix="train_"))
    if extra:
        out.update(records.eval_record(sums["extra"], "extra"))
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
