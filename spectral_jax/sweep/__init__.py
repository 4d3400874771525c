"""Sweeps: an experiment config's `get_sweep(arg)` expanded into runs, submitted through
submitit (local processes, SLURM job arrays, or this process), skipped when done and resumed
when interrupted (`spectral-jax sweep`). `hyper` builds the run lists in config files."""

from spectral_jax.sweep import hyper
from spectral_jax.sweep.driver import run_sweep
from spectral_jax.sweep.executors import Options
from spectral_jax.sweep.runs import Plan, Run, expand

__all__ = ["hyper", "run_sweep", "Options", "Plan", "Run", "expand"]
