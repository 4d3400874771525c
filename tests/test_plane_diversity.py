"""Planes through three images (geometry, 2-D spectra of known fields) and class diversity
(pairwise distances, Spearman with a bootstrap interval) against known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

import spectral_jax
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import diversity, plane


def test_plane_frame_of_known_geometry():
    d = 5
    x = np.zeros((1, 3, d), np.float32)
    x[0, 1, 0], x[0, 2, 1] = 3.0, 4.0  # a right triangle: legs 3 (u) and 4 (v)
    f = plane.plane_frames(x + 1.0, grid=9)
    np.testing.assert_allclose(f["coords"][0], [[0, 0], [3, 0], [0, 4]], atol=1e-6)
    side = 4 * (1 + 2 * plane.MARGIN)
    assert f["side"][0] == pytest.approx(side)
    row_length = np.linalg.norm(f["x1"] - f["x0"], axis=1)
    np.testing.assert_allclose(row_length, side, rtol=1e-5)  # every row spans the square
    np.testing.assert_allclose(np.linalg.norm(f["x0"][1] - f["x0"][0]), side / 8, rtol=1e-5)  # rows G-1 apart
    with pytest.raises(ConfigError, match="collinear"):
        plane.plane_frames(np.stack([x[:, 0], x[:, 1], 2 * x[:, 1]], 1), grid=9)


def test_plane_spectrum_of_known_fields():
    g, k = 32, 5
    u = np.arange(g) / g
    wave = np.sin(2 * np.pi * k * u)[None, :, None] * np.ones((g, 1, 1))  # k cycles per side along one axis
    ramp = (0.3 * u[None, :, None] + 0.1 * u[:, None, None]) * np.ones((g, g, 1))
    stats = plane.plane_statistics(jnp.asarray(np.stack([wave, ramp]), jnp.float32))
    radial = np.asarray(stats["radial"])
    assert np.argmax(radial[0]) == k
    assert float(stats["hf_power"][0]) > 0.1 and float(stats["hf_power"][1]) < 1e-10  # a plane is detrended away
    assert radial.shape == (2, g // 2 + 1)


def test_plane_triples_cycle_through_classes():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_array_equal(plane.plane_triples(labels, 5), [[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1],
                                                                   [4, 5, 6]])
    with pytest.raises(ConfigError, match="three classes"):
        plane.plane_triples(np.array([0, 1, 0, 1]), 1)


def test_plane_lines_through_the_api():
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(30, 4, 4, 1)).astype(np.float32), np.arange(30) % 3
    w = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    s = spectral_jax.interpolation_spectra(lambda v, x: x.reshape(len(x), -1) @ v, w, images, labels, lines="plane",
                                           planes=2, grid=8, chunk_lines=8)
    assert s["power2d"].shape == (2, 8, 8) and s["predicted"].shape == (2, 8, 8) and len(s) == 2
    np.testing.assert_array_equal(s["triples"], [[0, 1, 2], [1, 2, 0]])
    # the grid point nearest to x_a predicts what the model predicts at x_a (a linear model: exact up to the grid)
    assert set(s.kind_name) == {"plane"} and np.all(np.isfinite(s["hf_power"]))


def test_mean_pairwise_distance_and_spearman():
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert float(diversity.mean_pairwise_distance(jnp.asarray(x))) == pytest.approx((3 + 4 + 5) / 3, rel=1e-6)
    r = diversity.spearman_with_interval(np.arange(10), np.arange(10) ** 2)
    assert r["rho"] == pytest.approx(1.0) and r["ci_low"] == pytest.approx(1.0) and r["n_classes"] == 10
    r = diversity.spearman_with_interval(np.arange(10), -np.arange(10.0))
    assert r["rho"] == pytest.approx(-1.0) and r["ci_high"] == pytest.approx(-1.0)
    noisy = diversity.spearman_with_interval(np.arange(12), np.random.default_rng(0).normal(size=12))
    assert noisy["ci_low"] < noisy["rho"] < noisy["ci_high"]
