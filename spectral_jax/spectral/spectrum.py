"""Spectral statistics of a network's output along interpolation lines (PAPER_SPEC §10).

For one line with logits z_k at M points x(t_k), t_k = k/(M-1) (both ends included):

    p_k          = softmax(z_k)                      (row-wise)
    r_k          = ||p_k - p_0||                     the paper's signal
    d_k          = r_k - r_{M-1} * k/(M-1)           detrended: removes the FFT wrap-around jump
    power_j      = |rfft(d)_j|^2, j = 0..M//2        one-sided power spectrum
    hf_power     = sum_{j >= ceil(M/8)} power_j / M^2            (primary)
    max_grad     = max_k ||p_{k+1} - p_k|| / step, step = ||x1 - x0|| / (M-1)   (primary)
    hf_fraction  = sum_{j >= ceil(M/8)} power_j / sum_{j >= 1} power_j   (0 if the output is constant,
                   i.e. non-DC power below float32 round-off, see NOISE_FLOOR)
    centroid     = sum_{j >= 1} j power_j / sum_{j >= 1} power_j          (0 if the output is constant)
    r_end        = r_{M-1}
    logit_distance = ||z_0 - z_{M-1}||

`mode="reference"` reproduces the released code's convention instead: t_k = k/M (x1 itself
is not sampled), no detrending, step = ||x1 - x0||/M, and a two-sided |fftshift(fft(r))|^2
spectrum is returned beside the one-sided one. All functions are pure jax.numpy, any batch shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

MODES = ("detrended", "reference")

# Non-DC power below M^2 * NOISE_FLOOR (a sinusoid of amplitude ~2e-6, well above float32
# round-off of probabilities, ~1e-7) counts as "the output does not vary": shape statistics
# of pure round-off noise would otherwise be arbitrary numbers.
NOISE_FLOOR = 1e-12


def hf_cutoff_bin(num_points: int) -> int:
    """First high-frequency bin: j >= M/8 (rounded up for M not divisible by 8)."""
    return math.ceil(num_points / 8)


def line_positions(num_points: int, mode: str = "detrended") -> jax.Array:
    """t_k in [0, 1], float32 [M]."""
    _check_mode(mode)
    denom = num_points - 1 if mode == "detrended" else num_points
    return jnp.arange(num_points, dtype=jnp.float32) / denom


def line_points(x0: jax.Array, x1: jax.Array, num_points: int, mode: str = "detrended") -> jax.Array:
    """x(t_k) = (1 - t_k) x0 + t_k x1 for endpoints [B, *S] -> points [B, M, *S]."""
    t = line_positions(num_points, mode).reshape((1, num_points) + (1,) * (x0.ndim - 1))
    return (1.0 - t) * x0[:, None] + t * x1[:, None]


def line_statistics(logits: jax.Array, endpoint_distance: jax.Array, mode: str = "detrended") -> dict[str, jax.Array]:
    """Statistics of lines from their logits.

    Args:
      logits: [..., M, K] float logits along each line.
      endpoint_distance: [...] ||x1 - x0|| in standardized input space.
      mode: "detrended" (PAPER_SPEC §10, default) or "reference".

    Returns a dict of arrays with batch shape [...]: `power` [..., M//2+1] (and, in reference
    mode, `power_two_sided` [..., M]), `hf_power`, `hf_fraction`, `centroid`, `max_grad`,
    `r_end`, `logit_distance`. Never NaN for finite logits.
    """
    _check_mode(mode)
    logits = logits.astype(jnp.float32)
    m = logits.shape[-2]
    probs = jax.nn.softmax(logits, axis=-1)  # row-wise (the reference code normalized globally)
    r = distance_from_start(probs)
    signal = detrend(r) if mode == "detrended" else r
    spacing = endpoint_distance / (m - 1 if mode == "detrended" else m)
    power = power_spectrum(signal)
    steps = jnp.linalg.norm(jnp.diff(probs, axis=-2), axis=-1)  # [..., M-1]
    out = {
        "power": power,
        **spectral_summary(power, m),
        "max_grad": _safe_ratio(jnp.max(steps, axis=-1), spacing),
        "r_end": r[..., -1],
        "logit_distance": jnp.linalg.norm(logits[..., 0, :] - logits[..., -1, :], axis=-1),
    }
    if mode == "reference":
        out["power_two_sided"] = jnp.square(jnp.abs(jnp.fft.fftshift(jnp.fft.fft(signal, axis=-1), axes=-1)))
    return out


def distance_from_start(probs: jax.Array) -> jax.Array:
    """r_k = ||p_k - p_0||: [..., M, K] -> [..., M]."""
    return jnp.linalg.norm(probs - probs[..., :1, :], axis=-1)


def detrend(r: jax.Array) -> jax.Array:
    """d_k = r_k - r_{M-1} k/(M-1): subtracts the straight line from r_0 = 0 to r_end."""
    m = r.shape[-1]
    return r - r[..., -1:] * (jnp.arange(m, dtype=r.dtype) / (m - 1))


def power_spectrum(signal: jax.Array) -> jax.Array:
    """One-sided power |rfft(signal)_j|^2, j = 0..M//2: [..., M] -> [..., M//2+1]."""
    return jnp.square(jnp.abs(jnp.fft.rfft(signal, axis=-1)))


def spectral_summary(power: jax.Array, num_points: int) -> dict[str, jax.Array]:
    """hf_power, hf_fraction and centroid of one-sided spectra [..., M//2+1] of M-point signals."""
    bins = jnp.arange(power.shape[-1], dtype=jnp.float32)
    hf_sum = jnp.sum(jnp.where(bins >= hf_cutoff_bin(num_points), power, 0.0), axis=-1)
    non_dc = jnp.sum(jnp.where(bins >= 1, power, 0.0), axis=-1)
    centroid_num = jnp.sum(jnp.where(bins >= 1, bins * power, 0.0), axis=-1)
    non_dc = jnp.where(non_dc > num_points * num_points * NOISE_FLOOR, non_dc, 0.0)
    return {
        "hf_power": hf_sum / (num_points * num_points),
        "hf_fraction": _safe_ratio(hf_sum, non_dc),
        "centroid": _safe_ratio(centroid_num, non_dc),
    }


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, and 0 where den == 0 (no NaN, no inf)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Unknown spectrum mode {mode!r}; valid: {', '.join(MODES)}.")
