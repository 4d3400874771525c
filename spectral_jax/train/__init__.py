"""Training: optimizer, pure steps, checkpoints, ensembles and the loop of a run directory."""

from spectral_jax.train.ensemble import member_runs
from spectral_jax.train.loop import train_and_evaluate, train_runs

__all__ = ["train_and_evaluate", "train_runs", "member_runs"]
