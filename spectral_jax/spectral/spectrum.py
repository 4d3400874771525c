"""Spectral statistics of a network's output along lines (docs/methods.md §10, docs/analysis.md §4).

A line holds N points x_k (k < n valid; the rest, in `distance` sampling, zero-padding) with
logits z_k, probabilities p_k = softmax(z_k) (row-wise), and spacing Δ = ||x_{k+1} - x_k||
in standardized input units. The signal s_k starts at 0:

    prob_distance   s_k = ||p_k - p_0||                  (the paper's r_k; the default)
    class_logit     s_k = z_k[c] - z_0[c]                c: the line's class (label of x_0, or
                                                         the class predicted at x_0 if unlabeled)
    predicted_prob  s_k = p_k[c'] - p_0[c']              c' = argmax p_0: the class predicted at x_0

Differences of probabilities are taken from the logits without cancellation
(`signals.prob_differences`), so a confident model's tiny changes keep their relative precision.

Estimators (`ESTIMATORS`, in `count` and `distance` sampling; `reference` transforms the raw
signal, as the released code did):

    cubic   d = s minus the cubic through s_0, s_1, s_{n-2}, s_{n-1}: removes the end values and
            the one-sided end slopes, so the periodic extension has neither a jump nor a kink and
            every polynomial of degree <= 3 has no power at all (the default)
    linear  d = s minus the straight line from s_0 = 0 to s_{n-1} (the first release's)
    hann    linear, then a Hann taper scaled to keep a sinusoid's power

d_{n-1} = d_0 = 0 with every estimator, so in `count` sampling the new estimators transform one
period d_0..d_{M-2} (FFT length M - 1: bin j is exactly j cycles per line); `linear` keeps the
first release's M-point transform. Then, per line, with L the FFT length:

    power_j      = |rfft(d)_j|^2, j = 0..L//2            one-sided spectrum (cubic: below the cutoff,
                                                         that of the linear detrend, whose low bins
                                                         the end-slope cubic would distort)
    hf_power     = sum_{j >= j_c} power_j / (L (n-1))     (linear: / (L n))
    hf_fraction  = sum_{j >= j_c} power_j / sum_{j >= 1} power_j
    centroid     = sum_{j >= 1} f_j power_j / sum_{j >= 1} power_j  (f_j: bins, or cycles per unit
                   in `distance` sampling)
    max_grad     = max_{k < n-1} ||p_{k+1} - p_k|| / Δ  (prob_distance) or |s_{k+1} - s_k| / Δ
    r_end        = s_{n-1}                               the signal's end value
    logit_distance    = ||z_0 - z_{n-1}||
    max_prob_distance = max_{k < n} ||p_k - p_0||        (the released code's statistic)
    hf_floor     the hf_power that float32 round-off of this line's signal could produce

Round-off floor: s carries an absolute error of about FLOOR_ULPS * u * scale (u = 2^-24), from the
computation (scale: the signal's largest value) and from the logits' own quantization (scale: their
largest magnitude times the probability mass off the top class, or the logit itself for
class_logit; `signals.signal_roundoff`). hf_floor is the hf_power of white noise of that size,
10^4 (computation) or 10^2 (quantization) times its power; hf_power and hf_fraction below it are
reported as 0, and hf_fraction and centroid are 0 when all non-DC power is below the floor of the
whole band: a value there is round-off.

The cutoff j_c: `cycles_per_line` (default 8 in `count`: the paper's M/8 at M = 64, but the same
frequency at every M), `bins` (ceil(L/8) by default; the default of `reference` and of
`linear`), or `cycles_per_unit` (default 0.1 in `distance` sampling). All functions are pure
jax.numpy over any batch shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from spectral_jax.config import ANALYSIS_CUTOFF_UNITS as CUTOFF_UNITS
from spectral_jax.config import ANALYSIS_ESTIMATORS as ESTIMATORS
from spectral_jax.config import ANALYSIS_SAMPLINGS as SAMPLINGS
from spectral_jax.config import ANALYSIS_SIGNALS as SIGNALS
from spectral_jax.errors import ConfigError, unknown_name
from spectral_jax.spectral.signals import (distance_from_start, line_signal, prob_differences, signal_roundoff,
                                          stable_signal)

STATISTICS = ("hf_power", "max_grad", "hf_fraction", "centroid", "r_end", "logit_distance", "max_prob_distance")
DEFAULT_CUTOFF_CYCLES_PER_UNIT = 0.1  # docs/methods.md §2.3, convention (a)
DEFAULT_CUTOFF_CYCLES_PER_LINE = 8.0  # the paper's M/8 bins at M = 64

# The `linear` estimator's absolute noise floor (the first release's): non-DC power below
# N n LEGACY_NOISE_FLOOR counts as "the output does not vary".
LEGACY_NOISE_FLOOR = 1e-12
# How far above the expected power of the signal's round-off (`signals.signal_roundoff`) a value must
# be to count: the computation's round-off 100x in amplitude, the logits' quantization 10x.
FLOOR_FACTOR_COMPUTED = 1e4
FLOOR_FACTOR_INPUTS = 1e2


def hf_cutoff_bin(fft_length: int) -> int:
    """First high-frequency bin of the `bins` unit by default: j >= L/8 (rounded up)."""
    return math.ceil(fft_length / 8)


def resolve_cutoff(sampling: str, cutoff: float = 0.0, unit: str = "", estimator: str = "cubic"
                   ) -> tuple[float, str]:
    """(cutoff, unit) with the defaults filled in: '' is `cycles_per_unit` in `distance` sampling,
    `bins` in `reference` sampling and with the `linear` estimator, else `cycles_per_line`; a
    cutoff of 0 is 0.1 cycles per unit, 8 cycles per line, or ceil(L/8) bins (returned as 0)."""
    check_choice("sampling", sampling, SAMPLINGS)
    check_choice("estimator", estimator, ESTIMATORS)
    if not unit:
        unit = ("cycles_per_unit" if sampling == "distance" else
                "bins" if sampling == "reference" or estimator == "linear" else "cycles_per_line")
    check_choice("hf_cutoff_unit", unit, CUTOFF_UNITS)
    if not cutoff:
        cutoff = {"cycles_per_unit": DEFAULT_CUTOFF_CYCLES_PER_UNIT,
                  "cycles_per_line": DEFAULT_CUTOFF_CYCLES_PER_LINE}.get(unit, 0.0)
    return float(cutoff), unit


def check_resolved(num_points: int, sampling: str, cutoff: float = 0.0, unit: str = "",
                   estimator: str = "cubic") -> None:
    """A cutoff in cycles per line above the highest frequency M points resolve is an error (every
    line would report hf_power 0)."""
    cutoff, unit = resolve_cutoff(sampling, cutoff, unit, estimator)
    highest = fft_length(num_points, sampling, estimator) // 2
    if unit == "cycles_per_line" and cutoff > highest:
        raise ConfigError(f"num_points={num_points} resolves at most {highest} cycles per line, less than the "
                          f"high-frequency cutoff of {cutoff:g} cycles per line: use num_points >= "
                          f"{2 * math.ceil(cutoff) + 2} (64 is the default) or a lower hf_cutoff.")


def fft_length(num_points: int, sampling: str = "count", estimator: str = "cubic") -> int:
    """Length L of the transform of lines of `num_points` (padded) points: one period M - 1 for
    `count` sampling with the cubic and hann estimators (d_{M-1} = d_0), else all points."""
    return num_points - 1 if sampling == "count" and estimator != "linear" else num_points


def line_positions(num_points: int, sampling: str = "count") -> jax.Array:
    """t_k in [0, 1] of `count` / `reference` sampling, float32 [M] (k/(M-1), resp. k/M)."""
    check_choice("sampling", sampling, SAMPLINGS)
    denom = num_points if sampling == "reference" else num_points - 1
    return jnp.arange(num_points, dtype=jnp.float32) / denom


def line_points(x0: jax.Array, x1: jax.Array, num_points: int, sampling: str = "count") -> jax.Array:
    """x(t_k) = (1 - t_k) x0 + t_k x1 for endpoints [B, *S] -> points [B, M, *S]."""
    t = line_positions(num_points, sampling).reshape((1, num_points) + (1,) * (x0.ndim - 1))
    return (1.0 - t) * x0[:, None] + t * x1[:, None]


def line_statistics(logits: jax.Array, spacing: jax.Array, *, sampling: str = "count",
                    signal: str = "prob_distance", valid: jax.Array | None = None,
                    classes: jax.Array | None = None, hf_cutoff: float = 0.0,
                    hf_cutoff_unit: str = "", estimator: str = "cubic") -> dict[str, jax.Array]:
    """Statistics of lines from their logits.

    Args:
      logits: [..., N, K] float logits along each line.
      spacing: [...] distance between consecutive points, standardized input units.
      sampling: "count" (default), "distance" or "reference" (see SAMPLINGS).
      signal: "prob_distance" (default), "class_logit" or "predicted_prob".
      valid: [...] int, points that belong to the line (the rest is zero-padding); default N.
      classes: [...] int, the line's class for `class_logit` (-1 or None: predicted at x_0).
      hf_cutoff, hf_cutoff_unit: the high-frequency cutoff (`resolve_cutoff` defaults).
      estimator: "cubic" (default), "linear" or "hann" (ignored in `reference` sampling).

    Returns a dict of arrays with batch shape [...]: `power` [..., L//2+1] (L = `fft_length`;
    in reference sampling also `power_two_sided` [..., N]), `hf_floor`, and every name of
    STATISTICS. Never NaN for finite logits.
    """
    legacy = sampling == "reference" or estimator == "linear"
    cutoff, unit = resolve_cutoff(sampling, hf_cutoff, hf_cutoff_unit, estimator)
    logits = logits.astype(jnp.float32)
    n_fft = logits.shape[-2]
    batch = logits.shape[:-2]
    n = jnp.full(batch, n_fft, jnp.int32) if valid is None else jnp.broadcast_to(valid, batch).astype(jnp.int32)
    spacing = jnp.broadcast_to(jnp.asarray(spacing, jnp.float32), batch)
    k = jnp.arange(n_fft)
    inside = k < n[..., None]  # [..., N]

    if sampling == "reference":
        s, probs = line_signal(logits, signal, classes)
        steps = (jnp.linalg.norm(jnp.diff(probs, axis=-2), axis=-1) if signal == "prob_distance"
                 else jnp.abs(jnp.diff(s, axis=-1)))
        r = distance_from_start(probs)
    else:
        s, steps = stable_signal(logits, signal, classes)
        r = s if signal == "prob_distance" else jnp.linalg.norm(prob_differences(logits, logits[..., :1, :]), axis=-1)
    s = jnp.where(inside, s, 0.0)
    s_end = jnp.take_along_axis(s, (n - 1)[..., None], axis=-1)[..., 0]
    d = s if sampling == "reference" else detrend(s, n, estimator)
    length = fft_length(n_fft, sampling, estimator)
    power = power_spectrum(d[..., :length])

    intervals = n if sampling == "reference" else jnp.maximum(n - 1, 1)
    if unit == "bins":
        cut = jnp.full(batch, cutoff if cutoff else hf_cutoff_bin(length), jnp.float32)
    elif unit == "cycles_per_line":
        cut = cutoff * length / intervals.astype(jnp.float32)
    else:
        cut = cutoff * length * spacing
    if estimator == "cubic" and sampling != "reference":
        # Below the cutoff, the spectrum of the straight-line detrend: the end-slope cubic only has to
        # remove the kink's leakage above it, and in the low bins it would add a cubic of its own.
        low = power_spectrum(detrend(s, n, "linear")[..., :length])
        power = jnp.where(jnp.arange(power.shape[-1]) < cut[..., None], low, power)
    bin_unit = 1.0 / (length * spacing) if sampling == "distance" else jnp.ones(batch, jnp.float32)

    steps = jnp.where(k[1:] < n[..., None], steps, 0.0)
    z_end = jnp.take_along_axis(logits, (n - 1)[..., None, None], axis=-2)[..., 0, :]
    if legacy:
        norm = (n_fft * n).astype(jnp.float32)
        floor = jnp.zeros(batch, jnp.float32)
        total_floor = norm * LEGACY_NOISE_FLOOR
    else:
        norm = (length * intervals).astype(jnp.float32)
        computed, inputs = signal_roundoff(logits, s, inside, signal, classes)
        sigma2 = jnp.maximum(FLOOR_FACTOR_COMPUTED * jnp.square(computed), FLOOR_FACTOR_INPUTS * jnp.square(inputs))
        hf_bins = jnp.maximum(power.shape[-1] - jnp.ceil(cut), 1.0)
        floor = sigma2 * hf_bins / length  # white round-off: σ² / L per bin
        total_floor = norm * sigma2 / 2.0
    summary = spectral_summary(power, cut, norm, bin_unit, total_floor)
    if not legacy:  # below the floor, high-frequency power is round-off: none
        above = summary["hf_power"] > floor
        summary["hf_power"] = jnp.where(above, summary["hf_power"], 0.0)
        summary["hf_fraction"] = jnp.where(above, summary["hf_fraction"], 0.0)
    out = {
        "power": power,
        **summary,
        "hf_floor": floor,
        "max_grad": _safe_ratio(jnp.max(steps, axis=-1), spacing),
        "r_end": s_end,
        "logit_distance": jnp.linalg.norm(logits[..., 0, :] - z_end, axis=-1),
        "max_prob_distance": jnp.max(jnp.where(inside, r, 0.0), axis=-1),
    }
    if sampling == "reference":
        out["power_two_sided"] = jnp.square(jnp.abs(jnp.fft.fftshift(jnp.fft.fft(d, axis=-1), axes=-1)))
    return out


def detrend(s: jax.Array, n: jax.Array | None = None, estimator: str = "linear") -> jax.Array:
    """The detrended signal d [..., N] of s [..., N] with n [...] valid points (default N), 0 beyond:

    linear: d_k = s_k - s_{n-1} k/(n-1), the straight line from s_0 = 0 to the end value;
    cubic:  then minus q_k = k (k - m) (a + b k), m = n - 1, the cubic that vanishes at both ends
            and matches d_1 and d_{m-1} (so d_0 = d_1 = d_{m-1} = d_m = 0; lines of < 4 points
            stay linear). Written around the straight line, it never sums terms larger than s;
    hann:   linear times the taper (1 - cos(2π k/m)) / 2, divided by sqrt(3/8) (its rms).
    """
    check_choice("estimator", estimator, ESTIMATORS)
    n_fft = s.shape[-1]
    if n is None:
        n = jnp.full(s.shape[:-1], n_fft, jnp.int32)
    k = jnp.arange(n_fft, dtype=s.dtype)
    s_end = jnp.take_along_axis(s, (n - 1)[..., None], axis=-1)
    ramp = s_end * k / jnp.maximum(n - 1, 1)[..., None].astype(s.dtype)
    d = jnp.where(k < n[..., None], s - ramp, 0.0)
    m = (n - 1)[..., None].astype(s.dtype)
    if estimator == "cubic":
        d1 = d[..., 1:2]
        d_last = jnp.take_along_axis(d, jnp.maximum(n - 2, 0)[..., None], axis=-1)
        ok = m >= 3
        mm = jnp.where(ok, m, 3.0)
        lo, hi = -d1 / (mm - 1), -d_last / (mm - 1)  # a + b and a + b (m - 1)
        b = (hi - lo) / (mm - 2)
        q = k * (k - mm) * (lo - b + b * k)
        d = jnp.where(ok & (k < n[..., None]), d - q, d)
    elif estimator == "hann":
        taper = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * k / jnp.maximum(m, 1.0))
        d = d * taper / math.sqrt(3.0 / 8.0)
    return d


def power_spectrum(signal: jax.Array) -> jax.Array:
    """One-sided power |rfft(signal)_j|^2, j = 0..N//2: [..., N] -> [..., N//2+1]."""
    return jnp.square(jnp.abs(jnp.fft.rfft(signal, axis=-1)))


def spectral_summary(power: jax.Array, cutoff_bin, norm, bin_unit=1.0, floor=None) -> dict[str, jax.Array]:
    """hf_power, hf_fraction and centroid of one-sided spectra [..., J].

    `cutoff_bin` [...]: first high-frequency bin (a float compares with the bin index);
    `norm` [...]: the normalization of hf_power; `bin_unit` [...]: the centroid's unit per bin;
    `floor` [...]: non-DC power at or below it counts as no variation (hf_fraction, centroid 0;
    default norm LEGACY_NOISE_FLOOR)."""
    bins = jnp.arange(power.shape[-1], dtype=jnp.float32)
    norm = jnp.asarray(norm, jnp.float32)
    floor = norm * LEGACY_NOISE_FLOOR if floor is None else floor
    hf_sum = jnp.sum(jnp.where(bins >= jnp.asarray(cutoff_bin)[..., None], power, 0.0), axis=-1)
    non_dc = jnp.sum(jnp.where(bins >= 1, power, 0.0), axis=-1)
    centroid_num = jnp.sum(jnp.where(bins >= 1, bins * power, 0.0), axis=-1)
    non_dc = jnp.where(non_dc > floor, non_dc, 0.0)
    return {
        "hf_power": hf_sum / norm,
        "hf_fraction": _safe_ratio(hf_sum, non_dc),
        "centroid": _safe_ratio(centroid_num, non_dc) * bin_unit,
    }


def frequencies(length: int, sampling: str = "count", step: float = 1.0):
    """The frequency of each one-sided bin of a transform of length L, float [L//2+1]: bins
    (`count` / `reference`) or cycles per unit (`distance`, step `step`)."""
    bins = jnp.arange(length // 2 + 1, dtype=jnp.float32)
    return bins / (length * step) if sampling == "distance" else bins


def _safe_ratio(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, and 0 where den == 0 (no NaN, no inf)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def check_choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise unknown_name(what, value, choices)
