"""The reference optimizer (PAPER_SPEC §4): clip by global norm, then SGD with Nesterov
momentum and a per-step cosine schedule whose step index counts from 1."""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax


def cosine_schedule(lr: float, total_steps: int) -> optax.Schedule:
    """lr_t = lr/2 * (1 + cos(pi * (t + 1) / T)) for optimizer update t = 0..T-1.

    The reference code counts the step inside the epoch from 1, so the first update already
    uses a slightly decayed rate and the last uses 0.
    """

    def schedule(count):
        return 0.5 * lr * (1.0 + jnp.cos(jnp.pi * (count + 1) / total_steps))

    return schedule


def cosine_lr(lr: float, count: int, total_steps: int) -> float:
    """The same schedule on the host, in Python floats (for logging)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * (count + 1) / total_steps))


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
    """Gradients arrive as grads of the *total* loss (CE + coupled L2), as in the reference."""
    parts = []
    if config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
    momentum = config.momentum if config.momentum > 0 else None
    parts.append(optax.sgd(cosine_schedule(config.lr, total_steps), momentum=momentum, nesterov=momentum is not None))
    return optax.chain(*parts)
