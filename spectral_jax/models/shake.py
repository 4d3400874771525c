"""Stochastic branch mixing for Shake-Shake (docs/methods.md §3.2) and ShakeDrop (§3.3).

Both regularizers multiply a residual branch by a random per-example factor in the forward
pass and by an *independent* random factor in the backward pass. `shake` is that operation:
forward `x * forward`, gradient `g * backward`. The samplers draw the factors for every block
of a network at once from one explicit key (a block's slice has shape [B, 1, 1, 1] and
broadcasts over H, W, C), so a training step is a pure function of its key. In evaluation
the models scale each branch by the factor's expectation instead (`SHAKE_SHAKE_EXPECTATION`,
`shakedrop_expectation`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

# E[u1 / (u1 + u2)] for i.i.d. u ~ U(0, 1) is 1/2 by symmetry.
SHAKE_SHAKE_EXPECTATION = 0.5


@jax.custom_vjp
def shake(x: jax.Array, forward: jax.Array, backward: jax.Array) -> jax.Array:
    """x * forward in the forward pass; the gradient w.r.t. x is g * backward.

    `forward` and `backward` broadcast against x ([B, 1, 1, 1] against [B, H, W, C]) and are
    cast to x's dtype. They are random draws, not functions of the parameters, so they receive
    zero gradient. (The reference writes this as x*b + stop_gradient(x*a - x*b); a custom VJP
    gives the same gradient with a forward value that is exactly x*a, in any dtype.)
    """
    return x * forward.astype(x.dtype)


def _shake_fwd(x, forward, backward):
    return shake(x, forward, backward), (forward, backward)


def _shake_bwd(residuals, g):
    forward, backward = residuals
    return g * backward.astype(g.dtype), jnp.zeros_like(forward), jnp.zeros_like(backward)


shake.defvjp(_shake_fwd, _shake_bwd)


def shake_shake_coefficients(key: jax.Array, num_blocks: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """-> (forward, backward), each [num_blocks, 2, B, 1, 1, 1] float32: per block, branch, example.

    Per block and example, (a1, a2) = (u1, u2) / (u1 + u2) with u ~ U(0, 1], independently for
    the forward and backward pass: the reference's normalized uniforms, not the textbook
    (a, 1 - a). The interval is (0, 1] rather than [0, 1) so that u1 + u2 is never 0. All
    blocks are drawn at once: one sampler per step instead of one per block keeps the
    compiled program small.
    """
    u = 1.0 - jax.random.uniform(key, (2, num_blocks, 2, batch, 1, 1, 1))  # [pass, block, branch, ...]
    w = u / u.sum(axis=2, keepdims=True)
    return w[0], w[1]


def shakedrop_coefficients(key: jax.Array, survival: Sequence[float], batch: int) -> tuple[jax.Array, jax.Array]:
    """-> (forward, backward), each [L, B, 1, 1, 1] float32, for L blocks with survival probs `survival`.

    Per block l and example, gate b ~ Bernoulli(p_l), alpha ~ U(-1, 1), beta ~ U(0, 1):
    forward = b + alpha - b*alpha, backward = b + beta - b*beta. A surviving block (b = 1) is
    the identity in both passes; a dropped one is scaled by alpha forward and beta backward.
    All blocks are drawn at once (see `shake_shake_coefficients`).
    """
    u = jax.random.uniform(key, (3, len(survival), batch, 1, 1, 1))
    p = jnp.asarray(survival, jnp.float32).reshape(-1, 1, 1, 1, 1)
    b = (u[0] < p).astype(jnp.float32)
    alpha = 2.0 * u[1] - 1.0
    beta = u[2]
    return b + alpha - b * alpha, b + beta - b * beta


def shakedrop_expectation(survival: float) -> float:
    """E[b + alpha - b*alpha] = p + E[alpha](1 - p) = p, since E[alpha] = 0 for U(-1, 1)."""
    return survival


def check_key(key: jax.Array | None, train: bool, model: str) -> None:
    """Training a model with stochastic blocks needs a key: `key=None` with `train=True` is an
    error rather than a silent fallback to a fixed key."""
    if train and key is None:
        raise ValueError(f"{model} draws random branch weights in training: call it with "
                         f"train=True and key=<a jax.random key> (got key=None).")
