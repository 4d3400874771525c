"""Run groups: the unit a sweep submits as one job.

Runs of a small model that differ only in the keys an ensemble may vary
(`config.ENSEMBLE_KEYS`: a seed, a learning rate, a weight decay, a label smoothing: values that
change numbers, not shapes or code paths) can share one job, up to `group_size` of them
(`spectral-jax sweep --group_size K`). Such a job trains them as one ensemble, in one compiled
program with `jax.vmap` over their states (`train.train_runs`), then analyses and reports each.
`group_size` 1 (the default) gives one job per run.
"""

from __future__ import annotations

import json
from typing import Sequence

from spectral_jax.config import ENSEMBLE_KEYS
from spectral_jax.data import is_streamed
from spectral_jax.sweep.runs import Run

SMALL_MODELS = ("cnn", "mlp")  # models cheap enough to train several at once on one device


def group_key(run: Run) -> str | None:
    """Runs with one key can share a job; None: this run always gets its own (a large model, or a
    setting an ensemble does not support: early stopping, streamed data)."""
    c = run.config
    if c.model not in SMALL_MODELS or c.max_accuracy or c.min_loss or is_streamed(c.dataset):
        return None
    rest = {k: v for k, v in run.effective.items() if k not in ENSEMBLE_KEYS}
    return json.dumps([run.stage, rest], sort_keys=True, default=str)


def group_runs(runs: Sequence[Run], group_size: int = 1) -> list[list[Run]]:
    """Runs in order, gathered into groups of at most `group_size` with one `group_key`."""
    if group_size <= 1:
        return [[r] for r in runs]
    groups: list[list[Run]] = []
    open_group: dict[str, list[Run]] = {}
    for run in runs:
        key = group_key(run)
        group = open_group.get(key) if key is not None else None
        if group is None or len(group) >= group_size:
            group = [run]
            groups.append(group)
            if key is not None:
                open_group[key] = group
        else:
            group.append(run)
    return groups
