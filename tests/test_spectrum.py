"""The statistics of docs/methods.md §10 against hand-built signals and a plain numpy version, for
every signal and sampling convention (masked, zero-padded lines included)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax.errors import ConfigError
from spectral_jax.spectral import spectrum

M = 64


def logits_for_signal(r: np.ndarray, q0: float = 0.2) -> np.ndarray:
    """Two-class logits whose row-wise softmax p_k gives ||p_k - p_0|| = r_k exactly.

    With p = (q, 1 - q): ||p_k - p_0|| = sqrt(2) |q_k - q_0|, so q_k = q0 + r_k / sqrt(2).
    """
    q = q0 + np.asarray(r, np.float64) / math.sqrt(2)
    assert np.all((q > 0) & (q < 1))
    return np.stack([np.log(q), np.log1p(-q)], axis=-1).astype(np.float32)


def numpy_detrend(s: np.ndarray, estimator: str) -> np.ndarray:
    """docs/analysis.md §4's estimators in float64 numpy, for the n valid values of one line."""
    n = len(s)
    t = np.arange(n) / max(n - 1, 1)
    if estimator == "cubic" and n >= 4:  # the cubic through the first two and the last two values
        nodes = [0, 1, n - 2, n - 1]
        return s - np.polyval(np.polyfit(t[nodes], s[nodes], 3), t)
    d = s - s[-1] * t
    if estimator == "hann":
        d = d * (0.5 - 0.5 * np.cos(2 * np.pi * t)) / math.sqrt(3 / 8)
    return d


def numpy_statistics(logits: np.ndarray, spacing: float, signal: str = "prob_distance", n: int | None = None,
                     cls: int = -1, sampling: str = "count", cut: float | None = None,
                     estimator: str = "linear") -> dict:
    """§10 written out independently in float64 numpy, for one line [N, K] with n valid points.
    `cut`: the first high-frequency bin (default: ceil(L/8) for linear and reference, 8 otherwise)."""
    z = logits.astype(np.float64)
    big_n = z.shape[0]
    n = big_n if n is None else n
    z = z[:n]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = np.sqrt(((p - p[0]) ** 2).sum(1))
    if signal == "prob_distance":
        s = r
    elif signal == "class_logit":
        c = cls if cls >= 0 else int(np.argmax(z[0]))
        s = z[:, c] - z[0, c]
    else:
        c = int(np.argmax(z[0]))
        s = p[:, c] - p[0, c]
    legacy = sampling == "reference" or estimator == "linear"
    d = s if sampling == "reference" else numpy_detrend(s, estimator)
    length = big_n - 1 if sampling == "count" and not legacy else big_n  # one period: d[M-1] = d[0]

    def spectrum_of(x):
        return np.abs(np.fft.rfft(np.concatenate([x, np.zeros(big_n - n)])[:length])) ** 2

    power = spectrum_of(d)
    if cut is None:
        cut = math.ceil(length / 8) if legacy else 8
    if estimator == "cubic" and sampling != "reference":  # low bins: those of the straight-line detrend
        power = np.where(np.arange(len(power)) < cut, spectrum_of(numpy_detrend(s, "linear")), power)
    hf = power[np.arange(len(power)) >= cut].sum()
    non_dc = power[1:].sum()
    norm = big_n * n if legacy else length * max(n - 1, 1)
    if legacy:
        non_dc = non_dc if non_dc > norm * 1e-12 else 0.0  # the first release's absolute floor
    else:  # round-off floor: 4 u max|s| (x100), and 4 u 2 max|z| max(1 - p_top) or 4 u max|z_c| (x10)
        u = 2.0 ** -24
        inputs = np.abs(z[:, c]).max() if signal == "class_logit" else 2 * np.abs(z).max() * (1 - p.max(1)).max()
        sigma2 = max(1e4 * (4 * u * np.abs(s).max()) ** 2, 1e2 * (4 * u * inputs) ** 2)
        hf_bins = max(len(power) - math.ceil(cut), 1)
        hf = hf if hf / norm > sigma2 * hf_bins / length else 0.0
        non_dc = non_dc if non_dc / norm > sigma2 / 2 else 0.0
    steps = np.sqrt(((p[1:] - p[:-1]) ** 2).sum(1)) if signal == "prob_distance" else np.abs(np.diff(s))
    unit = 1.0 / (length * spacing) if sampling == "distance" else 1.0
    return {
        "power": power,
        "hf_power": hf / norm,
        "hf_fraction": hf / non_dc if non_dc > 0 else 0.0,
        "centroid": unit * (np.arange(len(power))[1:] * power[1:]).sum() / non_dc if non_dc > 0 else 0.0,
        "max_grad": steps.max() / spacing,
        "r_end": s[-1],
        "logit_distance": np.sqrt(((z[0] - z[-1]) ** 2).sum()),
        "max_prob_distance": r.max(),
    }


@pytest.mark.parametrize("j", [1, 3, 8, 20, M // 2 - 1])
def test_pure_sinusoid_puts_power_in_its_bin(j):
    d = np.sin(2 * np.pi * j * np.arange(M) / M).astype(np.float32)
    power = np.asarray(spectrum.power_spectrum(jnp.asarray(d)))
    assert power.shape == (M // 2 + 1,)
    assert np.argmax(power) == j
    others = np.delete(power, j)
    assert power[j] == pytest.approx(M**2 / 4, rel=1e-4)
    assert others.max() < 1e-6 * power[j]


def test_parseval():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(5, M)).astype(np.float32)
    power = np.asarray(spectrum.power_spectrum(jnp.asarray(d)), np.float64)
    # One-sided: DC and Nyquist once, every other bin twice.
    two_sided_sum = power[:, 0] + power[:, -1] + 2 * power[:, 1:-1].sum(1)
    np.testing.assert_allclose(two_sided_sum, M * (d.astype(np.float64) ** 2).sum(1), rtol=1e-4)


def test_linear_ramp_has_no_high_frequency_power_but_a_step_does():
    k = np.arange(M)
    ramp = 0.8 * k / (M - 1)
    step = np.where(k >= M // 2, 0.8, 0.0)
    spacing = 10.0 / (M - 1)
    stats = spectrum.line_statistics(jnp.asarray(np.stack([logits_for_signal(ramp), logits_for_signal(step)])),
                                     jnp.array([spacing, spacing]))
    hf = np.asarray(stats["hf_power"])
    assert hf[0] < 1e-9  # detrending removes the ramp exactly (float32 round-off only)
    assert hf[1] > 1e-3
    # The raw, un-detrended reference convention would give the ramp a large value (the artifact).
    ref = spectrum.line_statistics(jnp.asarray(logits_for_signal(ramp)[None]), jnp.array([10.0 / M]),
                                   sampling="reference")
    assert float(ref["hf_power"][0]) > 1e3 * hf[0]
    # A step is the sharpest transition: max_grad = jump / step size.
    np.testing.assert_allclose(float(stats["max_grad"][1]), 0.8 / (10.0 / (M - 1)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(stats["r_end"]), [0.8, 0.8], rtol=1e-5)


def test_constant_output_gives_zeros_and_no_nan():
    logits = jnp.zeros((3, M, 10))
    stats = spectrum.line_statistics(logits, jnp.array([5.0, 0.0, 1.0]))
    for name, v in stats.items():
        v = np.asarray(v)
        assert np.all(np.isfinite(v)), name
        assert np.all(v == 0), name


def test_no_nan_for_extreme_logits_and_zero_length_lines():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(4, M, 10)) * 1e4, jnp.float32)
    stats = spectrum.line_statistics(logits, jnp.array([0.0, 1.0, 2.0, 3.0]))
    for name, v in stats.items():
        assert np.all(np.isfinite(np.asarray(v))), name
    assert float(stats["max_grad"][0]) == 0.0  # x1 == x0: defined as 0, not inf


@pytest.mark.parametrize("signal", ["prob_distance", "class_logit", "predicted_prob"])
@pytest.mark.parametrize("m,sampling,estimator", [  # reference sampling has no estimator: the raw signal
    (m, sampling, e) for m, sampling in [(16, "count"), (60, "count"), (64, "distance")]
    for e in ("cubic", "linear", "hann")] + [(64, "reference", "linear")])
def test_on_device_statistics_equal_numpy(m, sampling, signal, estimator):
    rng = np.random.default_rng(m)
    logits = (rng.normal(size=(6, m, 10)) * 3).astype(np.float32)
    spacing = rng.uniform(0.1, 2, size=6).astype(np.float32)
    valid = np.array([m, m - 1, m // 2, 9, 2, m]) if sampling == "distance" else np.full(6, m)
    classes = np.array([3, -1, 0, 9, -1, 5])
    got = {k: np.asarray(v) for k, v in spectrum.line_statistics(
        jnp.asarray(logits), jnp.asarray(spacing), sampling=sampling, signal=signal, valid=jnp.asarray(valid),
        classes=jnp.asarray(classes), estimator=estimator).items()}
    # distance sampling's default cutoff is 0.1 cycles per unit: bin j >= 0.1 N spacing, per line
    for i in range(6):
        cut = 0.1 * m * float(spacing[i]) if sampling == "distance" else None
        want = numpy_statistics(logits[i], float(spacing[i]), signal, int(valid[i]), int(classes[i]), sampling, cut,
                                estimator)
        for name, value in want.items():
            np.testing.assert_allclose(got[name][i], value, rtol=3e-4, atol=2e-6, err_msg=f"{name} line {i}")


def test_cutoff_in_cycles_per_line_bins_or_cycles_per_unit():
    rng = np.random.default_rng(5)
    logits = jnp.asarray(rng.normal(size=(1, M, 4)), jnp.float32)
    default = spectrum.line_statistics(logits, 0.5)
    power = np.asarray(default["power"])[0]
    norm = (M - 1) ** 2  # the cubic estimator transforms one period of M - 1 points
    assert power.shape == ((M - 1) // 2 + 1,)
    np.testing.assert_allclose(float(default["hf_power"][0]), power[8:].sum() / norm, rtol=1e-4)  # 8 cycles/line
    by_line = spectrum.line_statistics(logits, 0.5, hf_cutoff=12, hf_cutoff_unit="cycles_per_line")
    np.testing.assert_allclose(float(by_line["hf_power"][0]), power[12:].sum() / norm, rtol=1e-4)
    by_bins = spectrum.line_statistics(logits, 0.5, hf_cutoff=20, hf_cutoff_unit="bins")
    np.testing.assert_allclose(float(by_bins["hf_power"][0]), power[20:].sum() / norm, rtol=1e-4)
    # 0.25 cycles per unit at spacing 0.5 over L = M - 1 points: bin 0.25 * 63 * 0.5 = 7.875 -> 8
    by_freq = spectrum.line_statistics(logits, 0.5, hf_cutoff=0.25, hf_cutoff_unit="cycles_per_unit")
    np.testing.assert_allclose(float(by_freq["hf_power"][0]), power[8:].sum() / norm, rtol=1e-4)
    # The linear estimator keeps the first release's M-point transform and ceil(M/8) bins.
    old = spectrum.line_statistics(logits, 0.5, estimator="linear")
    old_power = np.asarray(old["power"])[0]
    assert old_power.shape == (M // 2 + 1,)
    np.testing.assert_allclose(float(old["hf_power"][0]), old_power[8:].sum() / M**2, rtol=1e-4)


def test_reference_mode_matches_released_convention():
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(M, 10)) * 2).astype(np.float32)
    stats = spectrum.line_statistics(jnp.asarray(logits[None]), jnp.array([8.0 / M]), sampling="reference")
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = np.sqrt(((p - p[0]) ** 2).sum(1))
    np.testing.assert_allclose(stats["power_two_sided"][0], np.abs(np.fft.fftshift(np.fft.fft(r))) ** 2,
                               rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(stats["power"][0], np.abs(np.fft.rfft(r)) ** 2, rtol=1e-3, atol=1e-6)
    step = 8.0 / M  # points t_k = k/M: x1 is not sampled
    np.testing.assert_allclose(stats["max_grad"][0], np.sqrt(((p[1:] - p[:-1]) ** 2).sum(1)).max() / step, rtol=1e-4)


def test_line_points_include_both_ends():
    x0, x1 = jnp.zeros((2, 4, 4, 1)), jnp.ones((2, 4, 4, 1))
    pts = np.asarray(spectrum.line_points(x0, x1, 9))
    assert pts.shape == (2, 9, 4, 4, 1)
    np.testing.assert_allclose(pts[:, :, 0, 0, 0], np.tile(np.arange(9) / 8, (2, 1)), rtol=1e-6)
    ref = np.asarray(spectrum.line_points(x0, x1, 8, sampling="reference"))
    np.testing.assert_allclose(ref[0, :, 0, 0, 0], np.arange(8) / 8, rtol=1e-6)


def test_unknown_choices_are_errors():
    with pytest.raises(ConfigError, match="count, distance, reference"):
        spectrum.line_statistics(jnp.zeros((1, M, 2)), jnp.ones(1), sampling="raw")
    with pytest.raises(ConfigError, match="prob_distance, class_logit, predicted_prob"):
        spectrum.line_statistics(jnp.zeros((1, M, 2)), jnp.ones(1), signal="logit")


def test_reference_mode_is_bit_for_bit_the_first_release():
    """The released code's convention, as the first release computed it (plain float32 softmax,
    no detrending, ceil(M/8) bins over M points), equal to the last bit."""
    rng = np.random.default_rng(11)
    logits = jnp.asarray(rng.normal(size=(3, M, 10)) * 4, jnp.float32)
    spacing = jnp.asarray([0.1, 0.2, 0.3], jnp.float32)
    got = spectrum.line_statistics(logits, spacing, sampling="reference")
    p = jax.nn.softmax(logits, axis=-1)
    r = jnp.linalg.norm(p - p[..., :1, :], axis=-1)
    power = jnp.square(jnp.abs(jnp.fft.rfft(r, axis=-1)))
    hf = jnp.sum(jnp.where(jnp.arange(M // 2 + 1) >= M // 8, power, 0.0), axis=-1) / (M * M)
    steps = jnp.linalg.norm(jnp.diff(p, axis=-2), axis=-1)
    for name, want in (("power", power), ("hf_power", hf), ("max_grad", jnp.max(steps, axis=-1) / spacing),
                       ("power_two_sided", jnp.square(jnp.abs(jnp.fft.fftshift(jnp.fft.fft(r, axis=-1), axes=-1))))):
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want), err_msg=name)
