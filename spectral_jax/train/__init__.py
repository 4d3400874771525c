"""Training: optimizer, pure steps, checkpoints and the loop of a run directory."""

from spectral_jax.train.loop import train_and_evaluate

__all__ = ["train_and_evaluate"]
