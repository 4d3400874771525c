"""Noise fitting (PAPER_SPEC §2.2, §10): how much of a label-noise function a model has fitted.

On a held-out set in evaluation mode, with y the one-hot labels, y' the noisy labels of the
same noise function, and p the model's softmax:

    clean_loss    = mean CE(y, p)          noisy_loss = mean CE(y', p)
    noise_fitting = clean_loss - noisy_loss           (no offset)
    oracle        = the noise fitting of p = y' exactly: mean [CE(y, y') - CE(y', y')]
    oracle_uniform = the same for uniform smoothing of equal amplitude (eps = a everywhere)

Pure math on logits and target rows; the training loop sums these per example each epoch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Targets with eps > K/(K-1) have a negative true-class entry; the oracle predictor is then
# clipped to this floor (and renormalized) so that its cross-entropy stays finite.
ORACLE_FLOOR = 1e-7


def soft_cross_entropy(targets: jax.Array, logits: jax.Array) -> jax.Array:
    """-sum_k y_k log softmax(z)_k per row: [B, K] x [B, K] -> [B]."""
    return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)


def distribution_cross_entropy(targets: jax.Array, probs: jax.Array) -> jax.Array:
    """-sum_k y_k log p_k for a predictor that outputs the distribution `probs` itself."""
    p = jnp.maximum(probs, ORACLE_FLOOR)
    p = p / jnp.sum(p, axis=-1, keepdims=True)
    return -jnp.sum(targets * jnp.log(p), axis=-1)


def oracle_terms(onehot: jax.Array, noisy: jax.Array) -> jax.Array:
    """Per-example noise fitting of the predictor p = y': CE(y, y') - CE(y', y')."""
    return distribution_cross_entropy(onehot, noisy) - distribution_cross_entropy(noisy, noisy)


def per_example_terms(logits: jax.Array, onehot: jax.Array, noisy: jax.Array, amplitude: float,
                      num_classes: int) -> dict[str, jax.Array]:
    """clean, noisy, oracle and oracle_uniform per example [B] (their means give the metrics)."""
    uniform = (1.0 - amplitude) * onehot + amplitude / num_classes
    return {
        "clean": soft_cross_entropy(onehot, logits),
        "noisy": soft_cross_entropy(noisy, logits),
        "oracle": oracle_terms(onehot, noisy),
        "oracle_uniform": oracle_terms(onehot, uniform),
    }


def fit_fraction(nf: float, nf_uniform: float, oracle: float, oracle_uniform: float) -> float:
    """(NF(f) - NF(uniform control)) / (oracle(f) - oracle(uniform)) (PAPER_SPEC §10)."""
    den = oracle - oracle_uniform
    return float((nf - nf_uniform) / den) if den != 0 else float("nan")


def minimum_over_epochs(records: list[dict], key: str = "noise_fitting", after_epoch: int = 0):
    """(min value, its epoch) of `key` over records with epoch >= after_epoch; (nan, -1) if none."""
    pts = [(r[key], r["epoch"]) for r in records if key in r and r["epoch"] >= after_epoch]
    if not pts:
        return float("nan"), -1
    i = int(np.argmin([v for v, _ in pts]))
    return float(pts[i][0]), int(pts[i][1])
