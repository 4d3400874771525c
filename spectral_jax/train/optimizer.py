"""The reference optimizer (docs/methods.md §4): clip by global norm, then SGD with Nesterov
momentum and a per-step cosine schedule whose step index counts from 1."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def cosine_schedule(lr: float, total_steps: int, restart_step: int = 0) -> optax.Schedule:
    """lr_t = lr/2 * (1 + cos(pi * (t + 1 - r) / (T - r))) for optimizer update t = 0..T-1.

    The reference code counts the step inside the epoch from 1, so the first update already
    uses a slightly decayed rate and the last uses 0. `restart_step` r > 0 starts a fresh cycle
    at update r (a finished run extended with `train --restart_schedule`); before r the single
    cycle over T applies.
    """

    def schedule(count):
        start = jnp.where(count >= restart_step, restart_step, 0)
        return 0.5 * lr * (1.0 + jnp.cos(jnp.pi * (count + 1 - start) / (total_steps - start)))

    return schedule


def make_optimizer(config, total_steps: int, lr=None) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """-> (optimizer, its learning-rate schedule). Gradients arrive as grads of the *total* loss
    (CE + coupled L2), as in the reference. `lr` (default `config.lr`) may be a traced array: the
    train step builds its optimizer from the run's `aux["hyper"]["lr"]`."""
    lr = config.lr if lr is None else lr
    schedule = cosine_schedule(lr, total_steps, config.get("schedule_restart_step", 0))
    parts = []
    if config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
    momentum = config.momentum if config.momentum > 0 else None
    parts.append(optax.sgd(schedule, momentum=momentum, nesterov=momentum is not None))
    return optax.chain(*parts), schedule
