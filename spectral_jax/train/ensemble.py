"""Ensembles: several runs trained together in one compiled program, `jax.vmap` over their states.

Members share the data (on the devices once), the model and every setting except
`config.ENSEMBLE_KEYS` (seed, lr, weight_decay, label_smoothing): those reach the train step as
arrays (`step.hyperparameters`), so a member's numbers equal those of the same run trained
alone, up to float rounding. Each member writes its own run directory, with the same files a
separate run writes. `loop.train_runs(configs, workdirs)` trains them (members stopped between
their saves resume together: the ones behind catch up first); this module checks that a list
of runs can be an ensemble and expands `--config.ensemble=K` into members.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import ml_collections

from spectral_jax import config as config_lib
from spectral_jax import data
from spectral_jax.errors import ConfigError

# What members may not differ in, beyond ENSEMBLE_KEYS: the analysis settings only matter later.
_IGNORED = ("analysis", "ensemble", "ensemble_key", "ensemble_values")


def check_members(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str | Path]) -> None:
    """Raises ConfigError unless these runs can train as one program."""
    first = configs[0]
    for config in configs[1:]:
        differ = [k for k in config_lib.diff(first, config, ignore=_IGNORED) if k not in config_lib.ENSEMBLE_KEYS]
        if differ:
            raise ConfigError(f"Members of an ensemble may differ only in {', '.join(config_lib.ENSEMBLE_KEYS)}; "
                              f"these differ too: {', '.join(differ)}.")
    if len({Path(w).resolve() for w in workdirs}) != len(workdirs):
        raise ConfigError("Every member of an ensemble needs a run directory of its own.")
    if data.is_streamed(first.dataset):
        raise ConfigError(f"{first.dataset} is streamed: ensembles need an in-memory dataset.")
    if first.max_accuracy or first.min_loss:
        raise ConfigError("Early stopping (max_accuracy, min_loss) stops runs one by one; an ensemble trains its "
                          "members in lockstep: train them separately.")


def member_runs(config: ml_collections.ConfigDict, workdir: str | Path
                ) -> tuple[list[ml_collections.ConfigDict], list[Path]]:
    """`--config.ensemble=K`: K member configs (ensemble=1, `ensemble_key` set to each value) and
    their run directories WORKDIR/<key>_<value>/."""
    key, k = config.ensemble_key, config.ensemble
    values = tuple(config.ensemble_values) or tuple(config.seed + i for i in range(k))
    configs, workdirs = [], []
    for value in values:
        member = config.copy_and_resolve_references()
        member.ensemble, member.ensemble_key, member.ensemble_values = 1, "seed", ()
        config_lib.apply_overrides(member, [(key, repr(value))])
        configs.append(member)
        workdirs.append(Path(workdir) / f"{key}_{value}")
    return configs, workdirs
