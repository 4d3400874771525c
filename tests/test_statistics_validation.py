"""What each statistic measures (docs/analysis.md): signals of known content along a line, sampled
by the evaluator itself, and what the default estimator must do with them."""

import numpy as np
import pytest

from spectral_jax import interpolation_spectra
from spectral_jax.spectral import validation

POINTS = (64, 128, 256, 512)


@pytest.fixture(scope="module")
def default():
    return {m: validation.measure(m) for m in POINTS}


@pytest.fixture(scope="module")
def linear():
    return {m: validation.measure(m, "linear") for m in (64, 256)}


@pytest.mark.parametrize("m", [64, 256])
def test_polynomials_score_at_most_a_tenth_of_a_sharpness_20_transition(default, m):
    reference = default[m]["logistic_20"]["per_r2"]
    assert reference > 1e-8
    for name in validation.POLYNOMIALS:
        assert default[m][name]["per_r2"] <= reference / 10, name


def test_the_linear_estimator_scores_smooth_polynomials_above_real_transitions(linear):
    """Why the default changed: ends-only detrending leaves a kink whose energy falls as M^-3."""
    at64 = linear[64]
    assert at64["cubic"]["per_r2"] > at64["logistic_20"]["per_r2"] > at64["logistic_5"]["per_r2"]
    assert at64["quadratic"]["per_r2"] > at64["logistic_20"]["per_r2"]
    ratio = at64["quadratic"]["per_r2"] / linear[256]["quadratic"]["per_r2"]
    assert 4**3 * 0.8 < ratio < 4**3 * 1.25


@pytest.mark.parametrize("m", POINTS)
def test_sharper_transitions_score_higher(default, m):
    rows = default[m]
    assert 0 < rows["logistic_5"]["per_r2"] < rows["logistic_20"]["per_r2"] < rows["logistic_80"]["per_r2"]
    assert rows["logistic_5"]["max_grad"] < rows["logistic_20"]["max_grad"] < rows["logistic_80"]["max_grad"]


@pytest.mark.parametrize("name", ["logistic_80", "sine_12", "step"])
def test_content_above_the_cutoff_does_not_depend_on_the_point_count(default, name):
    values = np.array([default[m][name]["per_r2"] for m in POINTS])
    assert values.max() / values.min() < 1.10, values


def test_a_sinusoid_scores_its_energy_above_the_cutoff_and_almost_nothing_below(default):
    for m in POINTS:
        assert default[m]["sine_12"]["hf_power"] == pytest.approx(0.25, rel=0.03)  # amplitude 1: A²/4
        assert default[m]["sine_3"]["hf_power"] < 1e-4 * 0.25
        assert default[m]["sine_3"]["centroid"] < 8 < default[m]["sine_12"]["centroid"]


def test_white_noise_puts_its_power_above_the_cutoff_in_proportion_to_the_band(default):
    for m in POINTS:
        band = 0.5 * (1 - 2 * 8 / (m - 1))  # one-sided: σ²/2 over the whole band
        assert default[m]["noise"]["per_r2"] == pytest.approx(band, rel=0.5)


def test_exact_polynomials_have_no_high_frequency_power(default):
    for m in POINTS:
        for name in validation.POLYNOMIALS:
            row = default[m][name]
            assert row["hf_power"] == 0.0 and row["hf_fraction"] == 0.0, (m, name)  # below the round-off floor
            assert 0 < row["hf_floor"] < 1e-8
        # a straight line is no variation at all; a curve's energy is all at the lowest bins
        assert default[m]["linear"]["centroid"] == 0.0
        assert 1.0 <= default[m]["quadratic"]["centroid"] < 1.5 and 1.0 <= default[m]["cubic"]["centroid"] < 1.5


def test_shape_statistics_follow_the_content(default):
    for m in POINTS:
        rows = default[m]
        assert rows["sine_3"]["centroid"] == pytest.approx(3.0, abs=0.01)
        assert rows["sine_12"]["centroid"] == pytest.approx(12.0, abs=0.01)
        assert rows["sine_12"]["hf_fraction"] > 0.99 and rows["sine_3"]["hf_fraction"] < 1e-3
        assert rows["logistic_5"]["centroid"] < rows["logistic_20"]["centroid"] < rows["logistic_80"]["centroid"]
        assert rows["noise"]["hf_fraction"] > 0.5 and rows["noise"]["centroid"] > 8


def test_interpolation_spectra_gives_the_evaluators_numbers():
    apply_fn, images, pairs = validation.known_signal_model(64)
    spectra = interpolation_spectra(apply_fn, None, images, pairs=pairs, signal="class_logit", num_points=64,
                                    forward_batch=64)
    measured = validation.measure(64)
    for i, name in enumerate(validation.SIGNALS):
        np.testing.assert_allclose(spectra["hf_power"][i], measured[name]["hf_power"], rtol=1e-6, atol=0)
    assert spectra.settings["estimator"] == "cubic"
