"""Float32-stable signals: within-class lines of a confident model (1 - p_y ~ 1e-6) against the
same statistics in float64 numpy from the same float32 logits (docs/analysis.md §4)."""

import numpy as np
import pytest

import spectral_jax
from spectral_jax.data import open_dataset
from spectral_jax.spectral import signals


@pytest.fixture(scope="module")
def confident():
    """The least-squares linear model of the digits (one-hot targets), logits scaled by 40."""
    ds = open_dataset("digits")
    train, test = ds.split("train"), ds.split("test")
    x = ((train.images.astype(np.float32) / 255 - ds.mean) / ds.std).reshape(len(train.labels), -1)
    w, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], np.eye(10)[train.labels], rcond=None)
    w = (40 * w).astype(np.float32)

    def apply_fn(v, images):
        return images.reshape(images.shape[0], -1) @ v[:-1] + v[-1]

    spectra = spectral_jax.interpolation_spectra(apply_fn, w, test.images, test.labels, mean=ds.mean, std=ds.std,
                                                 pairs_per_class=40, pairs_per_class_pair=0)
    return spectra


def _confident_within(s, limit=1e-4):
    """Within-class lines along which 1 - p_top stays below `limit` (float64 from the logits)."""
    within = s.kind_name == "within"
    top = float64_statistics(s["logits"])["top"]
    chosen = within & (1 - top < limit)
    assert chosen.sum() >= 40 and np.median(1 - top[chosen]) < 1e-5, (chosen.sum(), np.median(1 - top[chosen]))
    return chosen


def float64_statistics(logits):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    r = np.linalg.norm(p - p[:, :1], axis=-1)
    steps = np.linalg.norm(np.diff(p, axis=1), axis=-1)
    m = r.shape[1]
    t = np.arange(m) / (m - 1)
    hf = []
    for s in r:
        nodes = [0, 1, m - 2, m - 1]
        d = s - np.polyval(np.polyfit(t[nodes], s[nodes], 3), t)
        power = np.abs(np.fft.rfft(d[:-1])) ** 2
        hf.append(power[8:].sum() / (m - 1) ** 2)
    return {"r_end": r[:, -1], "max_grad_steps": steps.max(1), "hf_power": np.array(hf), "top": p.max(-1).min(1)}


def test_within_class_lines_of_a_confident_model_match_float64(confident):
    s = confident
    within = _confident_within(s)
    exact = float64_statistics(s["logits"][within])
    moves = exact["r_end"] >= 1e-6
    assert moves.sum() >= 30
    np.testing.assert_allclose(s["r_end"][within][moves], exact["r_end"][moves], rtol=1e-3)
    spacing = s["length"][within] / (s["n_points"][within] - 1)
    max_grad = exact["max_grad_steps"] / spacing
    np.testing.assert_allclose(s["max_grad"][within][moves], max_grad[moves], rtol=1e-3)
    floor = s["hf_floor"][within]
    above = exact["hf_power"] > floor
    # Well above the floor float32 agrees to 1e-3; just above it, to a few percent (the floor is where
    # round-off stops dominating, docs/analysis.md §4).
    clear = moves & (exact["hf_power"] > 100 * floor)
    assert clear.sum() >= 30
    np.testing.assert_allclose(s["hf_power"][within][clear], exact["hf_power"][clear], rtol=1e-3)
    near = moves & above & ~clear & (s["hf_power"][within] > 0)
    np.testing.assert_allclose(s["hf_power"][within][near], exact["hf_power"][near], rtol=0.05)
    below = ~above
    print(f"{below.mean():.1%} of {within.sum()} within-class lines below the round-off floor")
    assert np.all(s["hf_power"][within][below] <= 2 * floor[below])


def test_plain_float32_softmax_differences_are_round_off_there(confident):
    """What the stable form fixes: float32 softmax differences of the same logits are far off."""
    s = confident
    within = _confident_within(s)
    logits = s["logits"][within]
    exact = float64_statistics(logits)
    p32 = np.asarray(signals.line_signal(logits, "prob_distance")[0])
    moves = exact["r_end"] >= 1e-6
    error = np.abs(p32[:, -1] - exact["r_end"]) / exact["r_end"]
    assert np.mean(error[moves] > 1e-2) > 0.1


def test_an_exactly_linear_signal_has_no_shape_whatever_the_logits_magnitude():
    """class_logit of a linear model is linear along every line: hf_fraction and centroid are 0 (its
    float32 wiggles are below the round-off floor), for logits around 1 and around 20."""
    ds = open_dataset("digits")
    test = ds.split("test")
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 10)).astype(np.float32) / 8

    def apply_fn(v, images):
        return images.reshape(images.shape[0], -1) @ v

    for scale in (1.0, 20.0):
        s = spectral_jax.interpolation_spectra(apply_fn, scale * w, test.images, test.labels, mean=ds.mean, std=ds.std,
                                               signal="class_logit", pairs_per_class=10, pairs_per_class_pair=3)
        z = np.abs(s["logits"]).max()
        assert z > 3 * scale
        assert np.all(s["hf_fraction"] == 0) and np.all(s["centroid"] == 0) and np.all(s["hf_power"] == 0), scale
        assert np.all(np.abs(s["r_end"]) > 0)
