"""Spectral statistics of a network's output along lines (docs/methods.md §10, docs/analysis.md).

A line holds N points x_k (k < n valid; the rest, in `distance` sampling, zero-padding) with
logits z_k, probabilities p_k = softmax(z_k) (row-wise), and spacing Δ = ||x_{k+1} - x_k||
in standardized input units. The signal s_k starts at 0:

    prob_distance   s_k = ||p_k - p_0||                  (the paper's r_k; the default)
    class_logit     s_k = z_k[c] - z_0[c]                c: the line's class (label of x_0, or
                                                         the class predicted at x_0 if unlabeled)
    predicted_prob  s_k = p_k[c'] - p_0[c']              c' = argmax p_0: the class predicted at x_0

Sampling conventions (`SAMPLINGS`): `count` and `distance` detrend, d_k = s_k - s_{n-1} k/(n-1)
for k < n and 0 beyond (removes the FFT wrap-around jump); `reference` (the released code's
convention) does not. Then, per line:

    power_j      = |rfft(d)_j|^2, j = 0..N//2            one-sided spectrum
    hf_power     = sum_{j >= j_c} power_j / (N n)        (= / M^2 with M points and no padding)
    hf_fraction  = sum_{j >= j_c} power_j / sum_{j >= 1} power_j   (0 for a constant output,
                   i.e. non-DC power below N n NOISE_FLOOR)
    centroid     = sum_{j >= 1} f_j power_j / sum_{j >= 1} power_j  (f_j: bins, or cycles per unit
                   in `distance` sampling)
    max_grad     = max_{k < n-1} ||p_{k+1} - p_k|| / Δ  (prob_distance) or |s_{k+1} - s_k| / Δ
    r_end        = s_{n-1}                               the signal's end value
    logit_distance    = ||z_0 - z_{n-1}||
    max_prob_distance = max_{k < n} ||p_k - p_0||        (the released code's statistic)

The cutoff j_c is ceil(N/8) bins by default (`count`, `reference`), or a frequency f_c in
cycles per unit (j_c = f_c N Δ, the default 0.1 in `distance` sampling). All functions are
pure jax.numpy over any batch shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from spectral_jax.config import ANALYSIS_CUTOFF_UNITS as CUTOFF_UNITS
from spectral_jax.config import ANALYSIS_SAMPLINGS as SAMPLINGS
from spectral_jax.config import ANALYSIS_SIGNALS as SIGNALS
from spectral_jax.errors import unknown_name
STATISTICS = ("hf_power", "max_grad", "hf_fraction", "centroid", "r_end", "logit_distance", "max_prob_distance")
DEFAULT_CUTOFF_CYCLES_PER_UNIT = 0.1  # docs/methods.md §2.3, convention (a)

# Non-DC power below N n NOISE_FLOOR (a sinusoid of amplitude ~2e-6, well above float32
# round-off of probabilities, ~1e-7) counts as "the output does not vary": shape statistics
# of pure round-off noise would otherwise be arbitrary numbers.
NOISE_FLOOR = 1e-12


def hf_cutoff_bin(num_points: int) -> int:
    """First high-frequency bin by default: j >= N/8 (rounded up for N not divisible by 8)."""
    return math.ceil(num_points / 8)


def resolve_cutoff(sampling: str, cutoff: float = 0.0, unit: str = "") -> tuple[float, str]:
    """(cutoff, unit) with the convention's defaults filled in: 0 / '' mean ceil(N/8) bins for
    `count` and `reference`, 0.1 cycles per unit for `distance`. Bins 0 means the default bin."""
    check_choice("sampling", sampling, SAMPLINGS)
    unit = unit or ("cycles_per_unit" if sampling == "distance" else "bins")
    check_choice("hf_cutoff_unit", unit, CUTOFF_UNITS)
    if unit == "cycles_per_unit" and not cutoff:
        cutoff = DEFAULT_CUTOFF_CYCLES_PER_UNIT
    return float(cutoff), unit


def line_positions(num_points: int, sampling: str = "count") -> jax.Array:
    """t_k in [0, 1] of `count` / `reference` sampling, float32 [M] (k/(M-1), resp. k/M)."""
    check_choice("sampling", sampling, SAMPLINGS)
    denom = num_points if sampling == "reference" else num_points - 1
    return jnp.arange(num_points, dtype=jnp.float32) / denom


def line_points(x0: jax.Array, x1: jax.Array, num_points: int, sampling: str = "count") -> jax.Array:
    """x(t_k) = (1 - t_k) x0 + t_k x1 for endpoints [B, *S] -> points [B, M, *S]."""
    t = line_positions(num_points, sampling).reshape((1, num_points) + (1,) * (x0.ndim - 1))
    return (1.0 - t) * x0[:, None] + t * x1[:, None]


def line_signal(logits: jax.Array, signal: str = "prob_distance", classes: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
    """-> (s [..., N] with s_0 = 0, probs [..., N, K]) for logits [..., N, K] (see the module doc).

    `classes` [...] int: the line's class for `class_logit` (-1: the class predicted at x_0)."""
    check_choice("signal", signal, SIGNALS)
    probs = jax.nn.softmax(logits, axis=-1)  # row-wise (the reference code normalized globally)
    if signal == "prob_distance":
        return distance_from_start(probs), probs
    predicted = jnp.argmax(logits[..., 0, :], axis=-1)
    if signal == "class_logit":
        c = predicted if classes is None else jnp.where(classes >= 0, classes, predicted)
        values = logits
    else:
        c, values = predicted, probs
    picked = jnp.take_along_axis(values, jnp.broadcast_to(c[..., None, None], values.shape[:-1] + (1,)), axis=-1)[..., 0]
    return picked - picked[..., :1], probs


def line_statistics(logits: jax.Array, spacing: jax.Array, *, sampling: str = "count",
                    signal: str = "prob_distance", valid: jax.Array | None = None,
                    classes: jax.Array | None = None, hf_cutoff: float = 0.0,
                    hf_cutoff_unit: str = "") -> dict[str, jax.Array]:
    """Statistics of lines from their logits.

    Args:
      logits: [..., N, K] float logits along each line.
      spacing: [...] distance between consecutive points, standardized input units.
      sampling: "count" (default), "distance" or "reference" (see SAMPLINGS).
      signal: "prob_distance" (default), "class_logit" or "predicted_prob".
      valid: [...] int, points that belong to the line (the rest is zero-padding); default N.
      classes: [...] int, the line's class for `class_logit` (-1 or None: predicted at x_0).
      hf_cutoff, hf_cutoff_unit: the high-frequency cutoff (`resolve_cutoff` defaults).

    Returns a dict of arrays with batch shape [...]: `power` [..., N//2+1] (and, in reference
    sampling, `power_two_sided` [..., N]), and every name of STATISTICS. Never NaN for finite logits.
    """
    cutoff, unit = resolve_cutoff(sampling, hf_cutoff, hf_cutoff_unit)
    logits = logits.astype(jnp.float32)
    n_fft = logits.shape[-2]
    batch = logits.shape[:-2]
    n = jnp.full(batch, n_fft, jnp.int32) if valid is None else jnp.broadcast_to(valid, batch).astype(jnp.int32)
    spacing = jnp.broadcast_to(jnp.asarray(spacing, jnp.float32), batch)
    k = jnp.arange(n_fft)
    inside = k < n[..., None]  # [..., N]

    s, probs = line_signal(logits, signal, classes)
    s = jnp.where(inside, s, 0.0)
    s_end = jnp.take_along_axis(s, (n - 1)[..., None], axis=-1)[..., 0]
    d = s if sampling == "reference" else detrend(s, n)
    power = power_spectrum(d)

    if unit == "bins":
        cut = jnp.full(batch, cutoff if cutoff else hf_cutoff_bin(n_fft), jnp.float32)
    else:
        cut = cutoff * n_fft * spacing
    bin_unit = 1.0 / (n_fft * spacing) if sampling == "distance" else jnp.ones(batch, jnp.float32)

    if signal == "prob_distance":
        steps = jnp.linalg.norm(jnp.diff(probs, axis=-2), axis=-1)  # [..., N-1]
    else:
        steps = jnp.abs(jnp.diff(s, axis=-1))
    steps = jnp.where(k[1:] < n[..., None], steps, 0.0)
    z_end = jnp.take_along_axis(logits, (n - 1)[..., None, None], axis=-2)[..., 0, :]
    r = distance_from_start(probs)
    out = {
        "power": power,
        **spectral_summary(power, cut, n_fft * n, bin_unit),
        "max_grad": _safe_ratio(jnp.max(steps, axis=-1), spacing),
        "r_end": s_end,
        "logit_distance": jnp.linalg.norm(logits[..., 0, :] - z_end, axis=-1),
        "max_prob_distance": jnp.max(jnp.where(inside, r, 0.0), axis=-1),
    }
    if sampling == "reference":
        out["power_two_sided"] = jnp.square(jnp.abs(jnp.fft.fftshift(jnp.fft.fft(d, axis=-1), axes=-1)))
    return out


def distance_from_start(probs: jax.Array) -> jax.Array:
    """r_k = ||p_k - p_0||: [..., M, K] -> [..., M]."""
    return jnp.linalg.norm(probs - probs[..., :1, :], axis=-1)


def detrend(s: jax.Array, n: jax.Array | None = None) -> jax.Array:
    """d_k = s_k - s_{n-1} k/(n-1) for k < n, 0 beyond: subtracts the straight line from
    s_0 = 0 to the end value. s [..., N], n [...] valid points (default N)."""
    n_fft = s.shape[-1]
    if n is None:
        n = jnp.full(s.shape[:-1], n_fft, jnp.int32)
    k = jnp.arange(n_fft, dtype=s.dtype)
    s_end = jnp.take_along_axis(s, (n - 1)[..., None], axis=-1)
    ramp = s_end * k / jnp.maximum(n - 1, 1)[..., None].astype(s.dtype)
    return jnp.where(k < n[..., None], s - ramp, 0.0)


def power_spectrum(signal: jax.Array) -> jax.Array:
    """One-sided power |rfft(signal)_j|^2, j = 0..N//2: [..., N] -> [..., N//2+1]."""
    return jnp.square(jnp.abs(jnp.fft.rfft(signal, axis=-1)))


def spectral_summary(power: jax.Array, cutoff_bin, norm, bin_unit=1.0) -> dict[str, jax.Array]:
    """hf_power, hf_fraction and centroid of one-sided spectra [..., J].

    `cutoff_bin` [...]: first high-frequency bin (a float compares with the bin index);
    `norm` [...]: N n (M^2 without padding); `bin_unit` [...]: the centroid's unit per bin."""
    bins = jnp.arange(power.shape[-1], dtype=jnp.float32)
    norm = jnp.asarray(norm, jnp.float32)
    hf_sum = jnp.sum(jnp.where(bins >= jnp.asarray(cutoff_bin)[..., None], power, 0.0), axis=-1)
    non_dc = jnp.sum(jnp.where(bins >= 1, power, 0.0), axis=-1)
    centroid_num = jnp.sum(jnp.where(bins >= 1, bins * power, 0.0), axis=-1)
    non_dc = jnp.where(non_dc > norm * NOISE_FLOOR, non_dc, 0.0)
    return {
        "hf_power": hf_sum / norm,
        "hf_fraction": _safe_ratio(hf_sum, non_dc),
        "centroid": _safe_ratio(centroid_num, non_dc) * bin_unit,
    }


def frequencies(n_fft: int, sampling: str = "count", step: float = 1.0):
    """The frequency of each one-sided bin, float [N//2+1]: bins (cycles per line, `count` /
    `reference`) or cycles per unit (`distance`, step `step`)."""
    bins = jnp.arange(n_fft // 2 + 1, dtype=jnp.float32)
    return bins / (n_fft * step) if sampling == "distance" else bins


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, and 0 where den == 0 (no NaN, no inf)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def check_choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise unknown_name(what, value, choices)
