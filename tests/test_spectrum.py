"""The statistics of PAPER_SPEC §10 against hand-built signals and a plain numpy version."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax.spectral import spectrum

M = 64


def logits_for_signal(r: np.ndarray, q0: float = 0.2) -> np.ndarray:
    """Two-class logits whose row-wise softmax p_k gives ||p_k - p_0|| = r_k exactly.

    With p = (q, 1 - q): ||p_k - p_0|| = sqrt(2) |q_k - q_0|, so q_k = q0 + r_k / sqrt(2).
    """
    q = q0 + np.asarray(r, np.float64) / math.sqrt(2)
    assert np.all((q > 0) & (q < 1))
    return np.stack([np.log(q), np.log1p(-q)], axis=-1).astype(np.float32)


def numpy_statistics(logits: np.ndarray, distance: float) -> dict:
    """§10 written out independently in float64 numpy, for one line [M, K]."""
    z = logits.astype(np.float64)
    m = z.shape[0]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = np.sqrt(((p - p[0]) ** 2).sum(1))
    d = r - r[-1] * np.arange(m) / (m - 1)
    power = np.abs(np.fft.rfft(d)) ** 2
    cut = math.ceil(m / 8)
    non_dc = power[1:].sum()
    non_dc = non_dc if non_dc > m * m * 1e-12 else 0.0  # spectrum.NOISE_FLOOR
    step = distance / (m - 1)
    return {
        "power": power,
        "hf_power": power[cut:].sum() / m**2,
        "hf_fraction": power[cut:].sum() / non_dc if non_dc > 0 else 0.0,
        "centroid": (np.arange(len(power))[1:] * power[1:]).sum() / non_dc if non_dc > 0 else 0.0,
        "max_grad": np.sqrt(((p[1:] - p[:-1]) ** 2).sum(1)).max() / step,
        "r_end": r[-1],
        "logit_distance": np.sqrt(((z[0] - z[-1]) ** 2).sum()),
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
    stats = spectrum.line_statistics(jnp.asarray(np.stack([logits_for_signal(ramp), logits_for_signal(step)])),
                                     jnp.array([10.0, 10.0]))
    hf = np.asarray(stats["hf_power"])
    assert hf[0] < 1e-9  # detrending removes the ramp exactly (float32 round-off only)
    assert hf[1] > 1e-3
    # The raw, un-detrended reference convention would give the ramp a large value (the artifact).
    ref = spectrum.line_statistics(jnp.asarray(logits_for_signal(ramp)[None]), jnp.array([10.0]), mode="reference")
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


@pytest.mark.parametrize("m", [16, 64, 60])
def test_on_device_statistics_equal_numpy(m):
    rng = np.random.default_rng(m)
    logits = (rng.normal(size=(6, m, 10)) * 3).astype(np.float32)
    distance = rng.uniform(1, 30, size=6).astype(np.float32)
    got = {k: np.asarray(v) for k, v in spectrum.line_statistics(jnp.asarray(logits), jnp.asarray(distance)).items()}
    for i in range(6):
        want = numpy_statistics(logits[i], float(distance[i]))
        for name, value in want.items():
            np.testing.assert_allclose(got[name][i], value, rtol=2e-4, atol=1e-6, err_msg=name)


def test_reference_mode_matches_released_convention():
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(M, 10)) * 2).astype(np.float32)
    stats = spectrum.line_statistics(jnp.asarray(logits[None]), jnp.array([8.0]), mode="reference")
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
    ref = np.asarray(spectrum.line_points(x0, x1, 8, mode="reference"))
    np.testing.assert_allclose(ref[0, :, 0, 0, 0], np.arange(8) / 8, rtol=1e-6)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="detrended, reference"):
        spectrum.line_statistics(jnp.zeros((1, M, 2)), jnp.ones(1), mode="raw")
