"""Label noise (docs/methods.md §2.1) and the noise-fitting evaluator (§2.2, §10)."""

import math
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from spectral_jax.data import noise as noise_lib
from spectral_jax.train import step as step_lib

K = 10


def noise_config(**kw):
    c = ml_collections.ConfigDict(dict(type="radial", frequency=0.3, frequency_unit="absolute", amplitude=0.5,
                                       normalize=True, spatial_frequency=2.0, seed=0, class_index=-1,
                                       min_after_epoch=0))
    c.update(kw)
    return c


def batch(b=64, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    images = jnp.asarray(rng.normal(size=(b,) + shape), jnp.float32)
    labels = rng.integers(0, K, size=b)
    return images, jax.nn.one_hot(labels, K), labels


def test_chi_mean_is_the_reference_phase():
    assert noise_lib.chi_mean(3072) == pytest.approx(55.421115476835, abs=1e-9)
    # sqrt(2) Gamma(1536.5) / Gamma(1536) written out with scipy-free log-gamma
    assert noise_lib.chi_mean(1) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-12)


@pytest.mark.parametrize("kind", ["radial", "random"])
def test_normalized_eps_has_batch_mean_amplitude_and_rows_sum_to_one(kind):
    images, y, _ = batch()
    noise = noise_lib.make_label_noise(noise_config(type=kind), (8, 8, 1), K)
    noisy, eps = noise(images, y)
    assert float(eps.mean()) == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(np.asarray(noisy.sum(-1)), 1.0, rtol=1e-6)
    assert float(eps.std()) > 0.05  # it really varies with the image
    s = 1 + np.sin(2 * np.pi * 0.3 * np.asarray(noise.feature(images)))
    np.testing.assert_allclose(np.asarray(eps), 0.5 * s / s.mean(), rtol=1e-5)


def test_unnormalized_eps_and_zero_amplitude():
    images, y, _ = batch()
    noise = noise_lib.make_label_noise(noise_config(normalize=False), (8, 8, 1), K)
    s = 1 + np.sin(2 * np.pi * 0.3 * np.asarray(noise.feature(images)))
    np.testing.assert_allclose(np.asarray(noise(images, y)[1]), 0.5 * s, rtol=1e-5)
    zero = noise_lib.make_label_noise(noise_config(amplitude=0.0), (8, 8, 1), K)
    np.testing.assert_array_equal(np.asarray(zero(images, y)[0]), np.asarray(y))


def test_uniform_is_constant_smoothing():
    images, y, _ = batch()
    noisy, eps = noise_lib.make_label_noise(noise_config(type="uniform", amplitude=0.3), (8, 8, 1), K)(images, y)
    np.testing.assert_allclose(np.asarray(eps), 0.3)
    np.testing.assert_allclose(np.asarray(noisy), np.asarray(0.7 * y + 0.03), rtol=1e-6)


def test_radial_feature_uses_the_phase_constant():
    noise = noise_lib.make_label_noise(noise_config(), (32, 32, 3), K)
    assert noise.phase == pytest.approx(55.421115476835, abs=1e-9)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 32, 32, 3)), jnp.float32)
    want = np.linalg.norm(np.asarray(x).reshape(3, -1), axis=1) - 55.421115476835
    np.testing.assert_allclose(np.asarray(noise.feature(x)), want, rtol=1e-5, atol=1e-4)


def test_class_index_leaves_other_rows_untouched():
    images, y, labels = batch()
    noise = noise_lib.make_label_noise(noise_config(class_index=3), (8, 8, 1), K)
    noisy, eps = noise(images, y)
    other = labels != 3
    np.testing.assert_array_equal(np.asarray(noisy)[other], np.asarray(y)[other])
    assert np.all(np.asarray(eps)[other] == 0) and np.all(np.asarray(eps)[~other] > 0)
    # normalization used the whole batch: class-3 eps equal those of the unrestricted noise
    full = noise_lib.make_label_noise(noise_config(), (8, 8, 1), K)
    np.testing.assert_allclose(np.asarray(eps)[~other], np.asarray(full(images, y)[1])[~other], rtol=1e-6)


def test_mask_excludes_padding_from_the_batch_mean():
    images, y, _ = batch(8)
    noise = noise_lib.make_label_noise(noise_config(), (8, 8, 1), K)
    mask = jnp.array([1, 1, 1, 1, 1, 0, 0, 0], bool)
    _, eps = noise(images, y, mask)
    _, eps5 = noise(images[:5], y[:5])
    np.testing.assert_allclose(np.asarray(eps[:5]), np.asarray(eps5), rtol=1e-6)
    assert np.all(np.asarray(eps[5:]) == 0)


def test_data_std_frequency_converts_exactly(digits):
    c = noise_config(frequency=2.0, frequency_unit="data_std")
    split = digits.split("train")
    base = noise_lib.make_label_noise(c, digits.image_shape, K, feature_std=1.0)
    g_std = noise_lib.feature_std(base, jnp.asarray(split.images), jnp.asarray(digits.mean), jnp.asarray(digits.std))
    x = (split.images.astype(np.float64) / 255 - digits.mean) / digits.std
    want = np.linalg.norm(x.reshape(len(x), -1), axis=1).std()
    assert g_std == pytest.approx(want, rel=1e-4)
    noise = noise_lib.make_label_noise(c, digits.image_shape, K, feature_std=g_std)
    assert noise.frequency == pytest.approx(2.0 / g_std, rel=1e-12)
    with pytest.raises(ValueError, match="data_std"):
        noise_lib.make_label_noise(c, digits.image_shape, K)


def label_decoding_model(noise, mean, std, scale):
    """A fake model that reads each image's label from pixel (0,0,0) (= 20 * label) and outputs
    log of the noisy targets (scale=None) or scale * one-hot (a confident clean predictor)."""
    def apply_fn(variables, images):
        u = (images[:, 0, 0, 0] * std[0] + mean[0]) * 255.0
        onehot = jax.nn.one_hot(jnp.round(u / 20.0).astype(jnp.int32), K)
        if scale is None:
            return jnp.log(noise(images, onehot)[0])
        return scale * onehot
    return types.SimpleNamespace(apply_fn=apply_fn)  # make_eval_fn needs only apply_fn


def test_noise_fitting_of_the_oracle_predictor_equals_the_logged_oracle():
    rng = np.random.default_rng(0)
    n, batch_size = 64, 32  # no padding: the fake model normalizes over the same batches
    labels = rng.integers(0, K, n).astype(np.int32)
    images = rng.integers(0, 256, size=(n, 6, 6, 1)).astype(np.uint8)
    images[:, 0, 0, 0] = 20 * labels
    mean, std = np.array([0.4], np.float32), np.array([0.3], np.float32)
    data = step_lib.DeviceSplit(jnp.asarray(images), jnp.asarray(labels), jnp.asarray(mean), jnp.asarray(std))
    noise = noise_lib.make_label_noise(noise_config(amplitude=0.4, frequency=0.2), (6, 6, 1), K)

    def nf(scale):
        ev = step_lib.make_eval_fn(label_decoding_model(noise, mean, std, scale), batch_size, K, noise=noise)
        s = jax.device_get(ev({}, data))
        return (s["loss"] - s["noisy"]) / s["count"], s["oracle"] / s["count"], s["correct"] / s["count"]

    nf_oracle, logged_oracle, acc = nf(None)
    assert acc == 1.0
    assert nf_oracle == pytest.approx(logged_oracle, abs=1e-5)
    nf_clean, _, _ = nf(8.0)
    assert nf_clean < nf_oracle - 0.5  # a confident clean predictor fits the noise far less


def test_oracle_terms_by_hand():
    y = jnp.array([[1.0, 0.0]])
    noisy = jnp.array([[0.8, 0.2]])
    want = -math.log(0.8) - (-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    assert float(noise_lib.oracle_terms(y, noisy)[0]) == pytest.approx(want, rel=1e-5)


def test_minimum_over_epochs_with_burn_in():
    records = [{"epoch": 1, "noise_fitting": -3.0}, {"epoch": 2, "noise_fitting": -1.0},
               {"epoch": 3, "noise_fitting": -2.0}]
    assert noise_lib.minimum_over_epochs(records) == (-3.0, 1)
    assert noise_lib.minimum_over_epochs(records, after_epoch=2) == (-2.0, 3)


@pytest.mark.parametrize("kind", ["fourier", "f", "1/f", "random"])
def test_projection_directions_are_unit_and_from_the_fourier_tools(kind):
    from spectral_jax.data import fourier

    d = noise_lib.noise_direction(kind, (32, 32, 3), seed=0, spatial_frequency=2.0)
    assert d.shape == (32, 32, 3) and d.dtype == np.float32
    assert np.linalg.norm(d) == pytest.approx(1.0, rel=1e-6)
    if kind == "fourier":  # spatial frequency 2.0 -> diagonal index (17, 17)
        want = fourier.fourier_basis_image(17, 17, 32, 32, 3)
        np.testing.assert_allclose(d, want / np.linalg.norm(want), atol=1e-7)
    if kind == "random":  # numpy seed 0, N(0, 1), reshaped HWC (docs/methods.md §2.1)
        want = np.random.RandomState(0).normal(size=3072).reshape(32, 32, 3)
        np.testing.assert_allclose(d, want / np.linalg.norm(want), rtol=1e-5, atol=1e-7)
    noise = noise_lib.make_label_noise(noise_config(type=kind), (32, 32, 3), K)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 32, 32, 3)), jnp.float32)
    np.testing.assert_allclose(np.asarray(noise.feature(x)), np.asarray(x).reshape(4, -1) @ d.reshape(-1),
                               rtol=1e-4, atol=1e-4)


def test_fit_fraction():
    # NF(f) = -0.8, NF(uniform) = -1.0, oracle(f) = -0.6, oracle(uniform) = -1.1: fitted 0.2 of 0.5
    assert noise_lib.fit_fraction(-0.8, -1.0, -0.6, -1.1) == pytest.approx(0.4)
    assert math.isnan(noise_lib.fit_fraction(-0.8, -1.0, -1.0, -1.0))
