"""Fourier basis and composite images: the unit-testable facts of docs/methods.md §2.4 and §9."""

import math

import numpy as np
import pytest

from spectral_jax.data import fourier


def test_basis_norm_is_sqrt3_everywhere_on_32x32():
    norms = np.array([[np.linalg.norm(fourier.fourier_basis_image(i, j)) for j in range(32)] for i in range(32)])
    np.testing.assert_allclose(norms, math.sqrt(3), rtol=1e-12)


@pytest.mark.parametrize("shape", [(8, 12), (7, 9), (5, 5)])
def test_basis_norm_is_sqrt_channels_on_any_grid(shape):
    h, w = shape
    for i in range(h):
        for j in range(w):
            b = fourier.fourier_basis_image(i, j, h, w, channels=1)
            assert b.shape == (h, w, 1)
            assert np.linalg.norm(b) == pytest.approx(1.0, rel=1e-12)


def test_dc_basis_is_constant_one_over_32():
    b = fourier.fourier_basis_image(16, 16)
    np.testing.assert_allclose(b, 1 / 32, rtol=1e-12)


def test_self_symmetric_positions():
    even = {(i, j) for i in range(32) for j in range(32) if fourier.is_self_symmetric((32, 32), (i, j))}
    assert even == {(0, 0), (0, 16), (16, 0), (16, 16)}  # DC, the Nyquist rows/cols and corner
    odd = {(i, j) for i in range(7) for j in range(9) if fourier.is_self_symmetric((7, 9), (i, j))}
    assert odd == {(3, 4)}  # only DC on an odd grid
    assert fourier.symmetric_position((32, 32), (17, 17)) == (15, 15)
    assert fourier.symmetric_position((32, 32), (0, 5)) == (0, 27)


def test_basis_is_cos_minus_sin_pattern():
    i, j = 18, 13  # k = (2, -3)
    n1, n2 = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    theta = 2 * np.pi * (2 * n1 - 3 * n2) / 32
    expected = (np.cos(theta) - np.sin(theta)) / 32
    b = fourier.fourier_basis_image(i, j)
    np.testing.assert_allclose(b[..., 0], expected, atol=1e-12)
    np.testing.assert_array_equal(b[..., 0], b[..., 2])  # grayscale: every channel the same
    assert np.abs(b).max() <= math.sqrt(2) / 32 + 1e-12


@pytest.mark.parametrize("kind", fourier.COMPOSITE_KINDS)
def test_composite_equals_weighted_sum_of_basis_images(kind):
    h, w = 8, 6
    q = fourier.squared_radial_frequency(h, w)
    weight = {"f": q, "1/f": 1 / q, "uniform": np.ones_like(q)}[kind]
    total = sum(weight[i, j] * fourier.fourier_basis_image(i, j, h, w) for i in range(h) for j in range(w))
    np.testing.assert_allclose(fourier.fourier_composite_image(kind, h, w), total, atol=1e-12)


def _power(kind):
    gray = fourier.fourier_composite_image(kind)[..., 0]
    return np.abs(np.fft.fftshift(np.fft.fft2(gray))) ** 2


def test_composite_power_ratios():
    inv, f = _power("1/f"), _power("f")
    assert inv[16, 20] / inv[16, 16] == pytest.approx(1 / 256, rel=1e-9)  # |k| = 4
    assert inv[16, 24] / inv[16, 16] == pytest.approx(1 / 4096, rel=1e-9)  # |k| = 8
    assert f[16, 20] / f[16, 16] == pytest.approx(256, rel=1e-9)
    assert inv[17, 16] == pytest.approx(inv[16, 16], rel=1e-9)  # |k| = 1 weighs like DC


def test_composite_raw_norms():
    assert np.linalg.norm(fourier.fourier_composite_image("1/f")) == pytest.approx(4.59, abs=0.005)
    assert np.linalg.norm(fourier.fourier_composite_image("f")) == pytest.approx(1.12e4, rel=0.005)
    assert np.linalg.norm(fourier.fourier_composite_image("uniform")) == pytest.approx(math.sqrt(3072), rel=1e-12)
    with pytest.raises(ValueError, match="valid kinds"):
        fourier.fourier_composite_image("pink")


@pytest.mark.parametrize("s, index", [(0, (16, 16)), (1, (16, 16)), (1.5, (17, 17)), (2.0, (17, 17)),
                                      (2.8, (17, 17)), (3, (18, 18)), (4.2, (18, 18)), (8, (21, 21)),
                                      (16, (27, 27)), (21.3, (31, 31)), (100, (31, 31))])
def test_spatial_frequency_mapping(s, index):
    assert fourier.spatial_frequency_index(s) == index


def test_unit_direction():
    d = fourier.unit_direction(fourier.fourier_composite_image("f"))
    assert np.linalg.norm(d) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fourier.unit_direction(np.zeros((2, 2, 3)))
