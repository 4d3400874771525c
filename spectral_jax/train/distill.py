"""Self-distillation (docs/methods.md §6): the teacher is the newest valid checkpoint of another run
directory, rebuilt from that run's own config.json and run in evaluation mode."""

from __future__ import annotations

from pathlib import Path

from spectral_jax import config as config_lib
from spectral_jax import models
from spectral_jax.errors import ConfigError
from spectral_jax.train import checkpoints


def load_teacher(teacher_workdir: str | Path, image_shape, num_classes: int, dataset: str):
    """-> (PureModel, variables) of the teacher; a ConfigError if it cannot serve this run."""
    teacher_workdir = Path(teacher_workdir)
    if not config_lib.is_run_dir(teacher_workdir):
        raise ConfigError(f"teacher_workdir {teacher_workdir} has no config.json: train the teacher first.")
    teacher_config = config_lib.load_run_config(teacher_workdir)
    if teacher_config.dataset != dataset:
        raise ConfigError(f"The teacher in {teacher_workdir} was trained on {teacher_config.dataset!r}, "
                                     f"this run uses {dataset!r}.")
    steps = checkpoints.valid_steps(teacher_workdir)
    if not steps:
        raise ConfigError(f"teacher_workdir {teacher_workdir} has no valid checkpoint.")
    model, abstract = models.create_model(teacher_config, image_shape, num_classes)
    return model, checkpoints.restore_variables(teacher_workdir, steps[-1], abstract)
