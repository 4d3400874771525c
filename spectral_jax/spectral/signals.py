"""The signal along a line, from its logits (docs/analysis.md §3-4): probability differences
without cancellation, the first release's plain float32 form (kept for `reference` sampling), and
the float32 round-off of the signal that `spectrum` turns into each line's floor.

    prob_distance   s_k = ||p_k - p_0||
    class_logit     s_k = z_k[c] - z_0[c]     c: the line's class (label of x_0, or predicted there)
    predicted_prob  s_k = p_k[c'] - p_0[c']   c' = argmax p_0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from spectral_jax.config import ANALYSIS_SIGNALS as SIGNALS
from spectral_jax.errors import unknown_name

UNIT_ROUNDOFF = 2.0 ** -24  # float32
# Round-off of the signal, in units of u * scale (a few roundings per value).
FLOOR_ULPS = 4.0


def prob_differences(z_a: jax.Array, z_b: jax.Array, log_b: jax.Array | None = None) -> jax.Array:
    """softmax(z_a) - softmax(z_b) row-wise, [..., K], without cancellation.

    With u = (z_a - z_b) - (z_a - z_b)[c] (c = argmax z_b), S = sum_j p_b,j expm1(u_j) and
    v = u - log1p(S), p_a = p_b exp(v), so p_a - p_b = p_b expm1(v): each entry keeps its
    relative precision even when the two distributions agree to 1e-7 (a confident model, whose
    plain float32 softmax difference is round-off). Entries that change by a factor beyond e
    (|v| >= 1) have no cancellation to avoid and are exp(log p_b + v) - p_b; far apart
    distributions take log(1 + S) as a log-sum-exp, so extreme logits never overflow."""
    c = jnp.argmax(z_b, axis=-1)[..., None]
    dz = z_a - z_b
    u = dz - jnp.take_along_axis(dz, c, axis=-1)
    log_b = jax.nn.log_softmax(z_b, axis=-1) if log_b is None else log_b
    p_b = jnp.exp(log_b)
    small = u < 60.0
    terms = jnp.where(small, p_b * jnp.expm1(jnp.where(small, u, 0.0)), jnp.exp(jnp.minimum(log_b + u, 80.0)) - p_b)
    total = jnp.sum(terms, axis=-1, keepdims=True)
    near = jnp.abs(total) < 0.5
    log_ratio = jnp.where(near, jnp.log1p(jnp.where(near, total, 0.0)),
                          jax.nn.logsumexp(log_b + u, axis=-1, keepdims=True))  # log(1 + S)
    v = u - log_ratio
    close = jnp.abs(v) < 1.0
    return jnp.where(close, p_b * jnp.expm1(jnp.where(close, v, 0.0)), jnp.exp(log_b + v) - p_b)


def line_signal(logits: jax.Array, signal: str = "prob_distance", classes: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
    """-> (s [..., N] with s_0 = 0, probs [..., N, K]) for logits [..., N, K], as the first release
    computed them (plain float32 softmax differences). The `reference` convention uses it, so its
    results stay bit for bit; `line_statistics` computes the other conventions with `stable_signal`.

    `classes` [...] int: the line's class for `class_logit` (-1: the class predicted at x_0)."""
    check_signal(signal)
    probs = jax.nn.softmax(logits, axis=-1)  # row-wise (the reference code normalized globally)
    if signal == "prob_distance":
        return distance_from_start(probs), probs
    c = _line_class(logits, signal, classes)
    values = logits if signal == "class_logit" else probs
    picked = _pick(values, c)
    return picked - picked[..., :1], probs


def stable_signal(logits: jax.Array, signal: str = "prob_distance", classes: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array]:
    """-> (s [..., N] with s_0 = 0, steps [..., N-1]: |s_{k+1} - s_k|, or ||p_{k+1} - p_k|| for
    prob_distance), every difference of probabilities taken by `prob_differences`."""
    check_signal(signal)
    if signal == "class_logit":
        c = _line_class(logits, signal, classes)
        z = _pick(logits, c)
        return z - z[..., :1], jnp.abs(jnp.diff(z, axis=-1))
    log_p = jax.nn.log_softmax(logits, axis=-1)
    from_start = prob_differences(logits, logits[..., :1, :], log_p[..., :1, :])
    between = prob_differences(logits[..., 1:, :], logits[..., :-1, :], log_p[..., :-1, :])
    if signal == "prob_distance":
        return jnp.linalg.norm(from_start, axis=-1), jnp.linalg.norm(between, axis=-1)
    c = _line_class(logits, signal, classes)
    return _pick(from_start, c), jnp.abs(_pick(between, c))


def _line_class(logits: jax.Array, signal: str, classes: jax.Array | None) -> jax.Array:
    """The class whose logit (class_logit: the line's label, else the prediction) or probability
    (predicted_prob: the class predicted at x_0) the signal follows, [...]."""
    predicted = jnp.argmax(logits[..., 0, :], axis=-1)
    if signal == "class_logit" and classes is not None:
        return jnp.where(classes >= 0, classes, predicted)
    return predicted


def _pick(values: jax.Array, c: jax.Array) -> jax.Array:
    """values[..., k, c] for every point k: [..., N, K], [...] -> [..., N]."""
    return jnp.take_along_axis(values, jnp.broadcast_to(c[..., None, None], values.shape[:-1] + (1,)), axis=-1)[..., 0]


def signal_roundoff(logits: jax.Array, s: jax.Array, inside: jax.Array, signal: str,
                    classes: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Per line, two float32 round-off scales of the signal's values, [...] each: the computation's,
    FLOOR_ULPS u max|s_k|, and the inputs', FLOOR_ULPS u times how far the logits' own quantization
    (ulp(z)) moves the signal: 2 max|z| max(1 - p_top) for probabilities, max|z_k[c]| for class_logit."""
    z = jnp.where(inside[..., None], logits, 0.0)
    if signal == "class_logit":
        inputs = jnp.max(jnp.abs(_pick(z, _line_class(logits, signal, classes))), axis=-1)
    else:  # δz ~ u |z| moves p by at most ~2 (1 - p_top) δz
        probs = jax.nn.softmax(logits, axis=-1)
        top = jnp.argmax(logits, axis=-1)[..., None]
        off_top = jnp.sum(jnp.where(jnp.arange(probs.shape[-1]) == top, 0.0, probs), axis=-1)
        inputs = 2.0 * jnp.max(jnp.abs(z), axis=(-2, -1)) * jnp.max(jnp.where(inside, off_top, 0.0), axis=-1)
    computed = jnp.max(jnp.where(inside, jnp.abs(s), 0.0), axis=-1)
    return FLOOR_ULPS * UNIT_ROUNDOFF * computed, FLOOR_ULPS * UNIT_ROUNDOFF * inputs


def distance_from_start(probs: jax.Array) -> jax.Array:
    """r_k = ||p_k - p_0|| from float32 probabilities: [..., M, K] -> [..., M] (the first release's)."""
    return jnp.linalg.norm(probs - probs[..., :1, :], axis=-1)


def check_signal(signal: str) -> None:
    if signal not in SIGNALS:
        raise unknown_name("signal", signal, SIGNALS)
