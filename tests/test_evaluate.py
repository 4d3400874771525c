"""The compiled line evaluator: one trace for many chunks, parts and checkpoints; the same
numbers as a direct computation and as one checkpoint at a time; functions of known spectrum
along lines in every sampling convention; every bad input a clear error."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax.data import standardize
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import KINDS, LineEvaluator, direction_lines, line_points, line_statistics, pair_lines
from spectral_jax.spectral import directions as directions_lib
from spectral_jax.spectral import layout
from spectral_jax.spectral.evaluate import Sampling, distance_points


def linear_apply_fn(variables, images):
    return images.reshape(images.shape[0], -1) @ variables["w"] + variables["b"]


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 4, 4, 2), dtype=np.uint8)
    mean, std = np.array([0.4, 0.5], np.float32), np.array([0.2, 0.3], np.float32)
    variables = {"w": jnp.asarray(rng.normal(size=(32, 5)), jnp.float32), "b": jnp.zeros(5)}
    pairs = np.stack([np.arange(10), (np.arange(10) + 1 + rng.integers(0, 10, 10)) % 12], 1).astype(np.int32)
    assert np.all(pairs[:, 0] != pairs[:, 1])
    return images, mean, std, variables, pairs


def test_compiles_once_for_many_chunks_parts_and_checkpoints(setup):
    images, mean, std, variables, pairs = setup
    traced = chex.assert_max_traces(linear_apply_fn, n=1)
    # 10 lines in chunks of 2 lines (4 forward batches of 8 points each), parts of 4 lines: 3 parts
    ev = LineEvaluator(traced, num_points=24, chunk_lines=2, forward_batch=8)
    p = ev.prepare(variables, jax.device_put(images), pairs, mean, std, part_lines=4)
    assert (p.num_parts, p.chunk_lines, p.forward_batch) == (3, 2, 8)
    out = ev.evaluate(p)
    other = jax.tree.map(lambda x: 2 * x, variables)  # "another checkpoint"
    ev.evaluate(p.__class__(**{**p.__dict__, "variables": other}))
    assert ev.trace_count == 1
    assert out["logits"].shape == (10, 24, 5) and out["power"].shape == (10, 12)  # one period: L = 23
    for name in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end", "logit_distance", "max_prob_distance"):
        assert out[name].shape == (10,)


def test_chunked_and_micro_batched_equal_direct_computation(setup):
    images, mean, std, variables, pairs = setup
    out = LineEvaluator(linear_apply_fn, num_points=24, chunk_lines=4, forward_batch=16)(
        variables, jnp.asarray(images), pairs, mean, std)
    x = standardize(jnp.asarray(images), mean, std)
    x0, x1 = x[pairs[:, 0]], x[pairs[:, 1]]
    pts = line_points(x0, x1, 24)
    logits = linear_apply_fn(variables, pts.reshape((-1,) + pts.shape[2:])).reshape(10, 24, 5)
    distance = jnp.linalg.norm((x1 - x0).reshape(10, -1), axis=-1)
    want = line_statistics(logits, distance / 23)
    np.testing.assert_allclose(out["logits"], np.asarray(logits), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["length"], np.asarray(distance), rtol=1e-5)
    for name, v in want.items():
        np.testing.assert_allclose(out[name], np.asarray(v), rtol=1e-3, atol=1e-6, err_msg=name)


def test_stacked_checkpoints_equal_one_at_a_time(setup):
    images, mean, std, variables, pairs = setup
    checkpoints = [jax.tree.map(lambda x, s=s: x * s, variables) for s in (0.5, 1.0, 3.0)]
    ev = LineEvaluator(linear_apply_fn, num_points=24, chunk_lines=4)
    stacked = ev(jax.tree.map(lambda *xs: jnp.stack(xs), *checkpoints), images, pairs, mean, std, stacked=True)
    for g, v in enumerate(checkpoints):
        one = ev(v, images, pairs, mean, std)
        for name in ("logits", "hf_power", "max_grad", "power"):
            np.testing.assert_allclose(stacked[name][g], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_automatic_stack_counts_each_checkpoint_and_its_work(setup, monkeypatch):
    """With no stack given (an accelerator's default), as many checkpoints are stacked as fit in
    half the free memory, each taking two copies of the variables and its work: XLA's count of the
    chunk program's temporaries and the results of two parts in flight."""
    images, mean, std, variables, pairs = setup
    ev = LineEvaluator(linear_apply_fn, num_points=24, chunk_lines=2, forward_batch=8)
    small, big = (ev.prepare(variables, jnp.asarray(images), pairs, mean, std, part_lines=n) for n in (2, 10))
    small_bytes, big_bytes = ev.work_bytes(small), ev.work_bytes(big)
    # 10 lines in parts of 10: 2 x 5 chunks of results in flight against 2 x 1; the logits alone
    # of one chunk (2 lines x 24 points x 5 classes, float32) are 960 bytes.
    assert big_bytes - small_bytes >= 8 * 960
    var_bytes = sum(x.nbytes for x in jax.tree.leaves(variables))
    monkeypatch.setattr(layout, "default_stack", lambda backend=None: 0)
    monkeypatch.setattr(layout, "free_memory_bytes", lambda: 2 * 5 * (2 * var_bytes + big_bytes))
    assert layout.stack_size(variables, big_bytes, 100) == 5
    assert layout.stack_size(variables, lambda: big_bytes, 3) == 3  # never more than there are
    assert layout.stack_size(variables, lambda: big_bytes, 100, stack=2) == 2  # asked for
    monkeypatch.setattr(layout, "free_memory_bytes", lambda: 10 ** 15)
    assert layout.stack_size(variables, big_bytes, 100) == layout.MAX_STACK


def test_float_images_need_no_standardization(setup):
    images, mean, std, variables, pairs = setup
    x = standardize(jnp.asarray(images), mean, std)
    ev = LineEvaluator(linear_apply_fn, num_points=24, chunk_lines=4)
    a = ev(variables, jnp.asarray(images), pairs, mean, std)
    b = ev(variables, x, pairs)
    np.testing.assert_allclose(a["hf_power"], b["hf_power"], rtol=1e-5, atol=1e-9)
    with pytest.raises(ConfigError, match="uint8"):
        ev(variables, jnp.asarray(images), pairs)


def test_line_with_equal_ends_is_constant(setup):
    images, mean, std, variables, _ = setup
    out = LineEvaluator(linear_apply_fn, num_points=24, chunk_lines=2)(
        variables, jnp.asarray(images), np.array([[3, 3], [4, 5]]), mean, std)
    # Interpolating x0 with itself moves the output only by float round-off: counted as constant.
    assert out["hf_fraction"][0] == 0 and out["centroid"][0] == 0 and out["max_grad"][0] == 0
    assert out["r_end"][0] == 0 and out["r_end"][1] > 0 and out["max_grad"][1] > 0


# ------------------------------------------------------------------------------------------
# Functions of known spectrum along lines (feature-vector inputs [N, D]: any input shape works)

D = 6
U = np.eye(D, dtype=np.float32)[0]  # lines run along the first axis; x0 has <x0, u> = 0


def wave_apply_fn(variables, x):
    """Class-0 logit = a function of the distance t = <x, u> along u; other logits 0."""
    t = x @ jnp.asarray(U)
    kind, f, amp = variables["kind"], variables["f"], variables["amp"]
    value = jnp.where(kind == 0, amp * jnp.sin(2 * jnp.pi * f * t),  # sinusoid, f cycles per unit
                      jnp.where(kind == 1, amp * (t >= variables["at"]),  # step
                                jnp.where(kind == 2, amp * t, 0.0 * t)))  # ramp, constant
    return jnp.stack([value, jnp.zeros_like(value)], axis=-1)


def wave(kind, f=0.0, amp=1.0, at=0.0):
    return {k: jnp.float32(v) for k, v in dict(kind=kind, f=f, amp=amp, at=at).items()}


def start_images(n):
    x = np.zeros((n, D), np.float32)
    x[:, 1:] = np.random.default_rng(1).normal(size=(n, D - 1))  # orthogonal to u: t starts at 0
    return x


def direction_line_set(lengths):
    n = len(lengths)
    lines = direction_lines(np.zeros(n, int), "custom", length=1.0)
    return lines.__class__(**{**lines.__dict__, "hi": np.asarray(lengths, np.float32)})


@pytest.mark.parametrize("j", [3, 7])
def test_sinusoid_peaks_at_its_cycles_per_line_in_count_sampling(j):
    lengths = np.array([10.0, 25.0, 40.0])
    ev = LineEvaluator(wave_apply_fn, num_points=64, chunk_lines=3, signal="class_logit")
    # f = j / L cycles per unit: j cycles per line whatever the line's length
    for length in lengths:
        out = ev(wave(0, f=j / length), start_images(1), direction_line_set([length]), directions=U)
        assert np.argmax(out["power"][0]) == j
        assert out["hf_power"][0] > 0 if j >= 8 else out["hf_fraction"][0] < 0.05


def test_sinusoid_peaks_at_its_frequency_per_unit_in_distance_sampling():
    lengths = np.array([20.0, 33.0, 47.0])
    f, step = 0.5, 0.25
    ev = LineEvaluator(wave_apply_fn, sampling="distance", step=step, chunk_lines=3, signal="class_logit")
    p = ev.prepare(wave(0, f=f), start_images(3), direction_line_set(lengths), directions=U)
    assert p.n_fft == 192  # the longest line: 47 / 0.25 + 1 = 189 points, rounded up to a multiple of 8
    out = ev.evaluate(p)
    np.testing.assert_array_equal(out["n_points"], (lengths / step).astype(int) + 1)
    freq = np.arange(p.n_fft // 2 + 1) / (p.n_fft * step)
    peaks = freq[np.argmax(out["power"], axis=1)]
    np.testing.assert_allclose(peaks, f, atol=1 / (p.n_fft * step))  # one shared absolute frequency grid
    # The centroid, in cycles per unit. These lines hold 10, 16.5 and 23.5 cycles: with whole cycles
    # missing, the end-slope cubic's curvature jump leaks into the bins just above the cutoff and pulls
    # the default's centroid down; the straight-line detrend shows the grid's units undisturbed.
    linear = LineEvaluator(wave_apply_fn, sampling="distance", step=step, chunk_lines=3, signal="class_logit",
                           estimator="linear")(wave(0, f=f), start_images(3), direction_line_set(lengths), directions=U)
    np.testing.assert_allclose(linear["centroid"], f, rtol=0.1)
    assert np.all((out["centroid"] > 0.5 * f) & (out["centroid"] < f))


def test_reference_sampling_of_a_periodic_sinusoid_is_exact():
    m, j = 32, 4
    ev = LineEvaluator(wave_apply_fn, num_points=m, sampling="reference", chunk_lines=1, signal="class_logit")
    out = ev(wave(0, f=j / 8.0), start_images(1), direction_line_set([8.0]), directions=U)  # t_k = 8 k / m
    power = out["power"][0]
    assert np.argmax(power) == j and power[j] == pytest.approx(m**2 / 4, rel=1e-3)
    assert np.delete(power, j).max() < 1e-6 * power[j]
    two_sided = out["power_two_sided"][0]
    assert set(np.argsort(two_sided)[-2:]) == {m // 2 - j, m // 2 + j}


@pytest.mark.parametrize("sampling", ["count", "distance", "reference"])
def test_constant_step_and_ramp(sampling):
    length = 16.0
    ev = LineEvaluator(wave_apply_fn, num_points=64, sampling=sampling, step=0.25, chunk_lines=1,
                       signal="class_logit")
    lines, x = direction_line_set([length]), start_images(1)

    def run(v):
        return {k: float(np.asarray(val)[0]) for k, val in ev(v, x, lines, directions=U).items() if np.ndim(val) == 1}

    const = run(wave(3))
    assert all(const[k] == 0 for k in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end"))
    ramp = run(wave(2, amp=0.1))
    assert ramp["r_end"] == pytest.approx(0.1 * (length if sampling != "reference" else length * 63 / 64), rel=1e-4)
    assert ramp["max_grad"] == pytest.approx(0.1, rel=1e-3)  # slope per unit distance
    if sampling == "reference":
        assert ramp["hf_power"] > 1e-4  # no detrending: the wrap-around jump shows
    else:
        assert ramp["hf_power"] < 1e-9  # detrending removes a ramp exactly
    step = run(wave(1, amp=2.0, at=length / 2 + 1e-3))
    spacing = 0.25 if sampling == "distance" else length / (63 if sampling == "count" else 64)
    assert step["max_grad"] == pytest.approx(2.0 / spacing, rel=1e-4)  # the jump in one spacing
    assert step["hf_power"] > 1e3 * max(ramp["hf_power"], 1e-12) if sampling != "reference" else step["hf_power"] > 0


# ------------------------------------------------------------------------------------------
# Directions


def test_random_directions_are_seeded_unit_and_per_line(setup):
    images, mean, std, variables, _ = setup
    labels = np.arange(12) % 3
    lines = direction_lines(labels, "random", length=2.0, centered=True)
    assert lines.kind[0] == KINDS.index("random") and np.all(lines.lo == -1.0) and np.all(lines.hi == 1.0)
    d = np.asarray(directions_lib.random_directions(7, jnp.arange(4), (4, 4, 2)))
    np.testing.assert_allclose(np.linalg.norm(d.reshape(4, -1), axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(d[0], d[1])
    np.testing.assert_array_equal(d[2], np.asarray(directions_lib.random_directions(7, jnp.arange(2, 3), (4, 4, 2)))[0])
    a = LineEvaluator(linear_apply_fn, 24, chunk_lines=4, seed=7)(variables, images, lines, mean, std)
    b = LineEvaluator(linear_apply_fn, 24, chunk_lines=2, seed=7)(variables, images, lines, mean, std)
    c = LineEvaluator(linear_apply_fn, 24, chunk_lines=4, seed=8)(variables, images, lines, mean, std)
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-5, atol=1e-5)  # chunking does not change them
    assert not np.allclose(a["logits"], c["logits"])
    np.testing.assert_allclose(a["length"], 2.0, rtol=1e-5)


def test_gradient_direction_of_a_linear_model():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(D, 3)).astype(np.float32)
    x = rng.normal(size=(4, D)).astype(np.float32)
    classes = np.array([0, 2, -1, 1])
    got = np.asarray(directions_lib.gradient_directions(lambda v, xs: xs @ v, jnp.asarray(w), jnp.asarray(x),
                                                        jnp.asarray(classes)))
    z = x @ w
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    target = np.where(classes >= 0, classes, z.argmax(1))
    g = (p - np.eye(3)[target]) @ w.T  # d CE / dx = W (p - y)
    np.testing.assert_allclose(got, g / np.linalg.norm(g, axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def unit(v):
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n > 0, n, 1)


def test_gradient_direction_of_a_confident_model_is_exact():
    """Logits x W + b with class 0 ahead by a margin of 14 to 100: 1 - p_0 from ~1e-5 to far
    below float32 resolution (p_0 rounds to exactly 1.0 from a margin of ~17). Against the exact
    gradient W (p - e_y), formed in float64 without cancellation, the direction has cosine
    >= 0.999 on every line; the float32 p - e_y it replaced gets 0.20 at a margin of 14, 0 from 50."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, 4)).astype(np.float32)
    x = rng.normal(size=(32, D)).astype(np.float32)
    classes = np.where(np.arange(32) % 4 == 3, -1, 0)  # -1: the predicted class, 0 here too
    for margin in (14.0, 20.0, 50.0, 100.0):
        b = np.array([margin, 0, 0, 0], np.float32)
        got = np.asarray(directions_lib.gradient_directions(
            lambda v, xs: xs @ v["w"] + v["b"], {"w": jnp.asarray(w), "b": jnp.asarray(b)}, jnp.asarray(x),
            jnp.asarray(classes)))
        z = x.astype(np.float64) @ w + b
        g = np.exp(z - z[:, 1:].max(1, keepdims=True))  # p_j for j != 0, up to a factor per row
        g[:, 0] = -g[:, 1:].sum(1)  # p_0 - 1 = -sum_{j != 0} p_j
        exact = unit(g @ w.T)
        assert np.all(np.sum(got * exact, axis=1) >= 0.999), margin
        z32 = x @ w + b  # the float32 p - e_y
        p = np.exp(z32 - z32.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        naive = unit((p - np.eye(4, dtype=np.float32)[0]) @ w.T)
        assert np.min(np.sum(naive * exact, axis=1)) < 0.999, margin  # the test can fail
        if margin >= 20:
            assert np.sum(p[:, 0] == 1.0) >= 16


def relu_apply_fn(variables, images):
    return jax.nn.relu(images.reshape(images.shape[0], -1)) @ variables["w"]


@pytest.mark.parametrize("sampling", ["count", "distance"])
def test_zero_gradient_gives_a_zero_length_line(sampling):
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(size=(2, 4, 4, 2))).astype(np.float32)
    x[0] *= -1  # relu is flat there: the input gradient is 0
    variables = {"w": jnp.asarray(rng.normal(size=(32, 5)), jnp.float32)}
    lines = direction_lines(np.array([0, 1]), "gradient", length=4.0)
    out = LineEvaluator(relu_apply_fn, 24, sampling=sampling, step=0.5, chunk_lines=2)(variables, x, lines)
    assert out["length"].tolist() == [0.0, 4.0]
    assert out["n_points"].tolist() == ([1, 9] if sampling == "distance" else [24, 24])
    for name in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end", "logit_distance", "max_prob_distance"):
        assert out[name][0] == 0, name
    assert out["max_grad"][1] > 0


@pytest.mark.parametrize("kind", ["random", "gradient"])
@pytest.mark.parametrize("length,step", [(10.0, 1.0), (6.0, 0.3)])
def test_distance_sampling_keeps_the_last_point_of_direction_lines(kind, length, step):
    """Unit directions whose float32 norm is 1 - 1e-7 used to lose the last point (before the
    fix: 39 of these 100 random lines and 45 gradient lines at L = 6, s = 0.3) and report a
    length of L - 1e-6 (45 and 48 lines at L = 10, s = 1)."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(100, 8, 8, 3)).astype(np.float32)
    variables = {"w": jnp.asarray(rng.normal(size=(192, 5)), jnp.float32), "b": jnp.zeros(5)}
    lines = direction_lines(np.arange(100) % 5, kind, length=length)
    ev = LineEvaluator(linear_apply_fn, sampling="distance", step=step, chunk_lines=20, save_logits=False)
    out = ev(variables, images, lines)
    np.testing.assert_array_equal(out["n_points"], round(length / step) + 1)
    np.testing.assert_array_equal(out["length"], np.float32(length))


def test_distance_sampling_keeps_the_last_point_of_pair_lines():
    """Pairs 6 units apart (float32 norms a few ulps either side of 6) at steps of 0.3 and 1
    (before the fix, 9 of the 50 lost their last point at s = 0.3)."""
    rng = np.random.default_rng(5)
    x0 = rng.normal(size=(50, 8, 8, 3)).astype(np.float32)
    u = rng.normal(size=x0.shape).astype(np.float32)
    u /= np.linalg.norm(u.reshape(50, -1), axis=1).reshape(-1, 1, 1, 1)
    images = np.concatenate([x0, x0 + 6 * u])
    pairs = np.stack([np.arange(50), np.arange(50, 100)], 1).astype(np.int32)
    variables = {"w": jnp.asarray(rng.normal(size=(192, 5)), jnp.float32), "b": jnp.zeros(5)}
    for step in (0.3, 1.0):
        out = LineEvaluator(linear_apply_fn, sampling="distance", step=step, chunk_lines=25, save_logits=False)(
            variables, images, pairs)
        np.testing.assert_allclose(out["length"], 6.0, rtol=1e-6)
        np.testing.assert_array_equal(out["n_points"], round(6 / step) + 1)


def test_host_padding_and_device_count_share_one_rule():
    whole = np.arange(1, 200, dtype=np.float32)
    for step in (0.3, 1.0, 0.25):
        for lengths in (whole * np.float32(step), np.nextafter(whole * np.float32(step), np.float32(0))):
            host = distance_points(lengths, step, np)
            np.testing.assert_array_equal(host, np.asarray(jax.jit(lambda v, s=step: distance_points(v, s))(lengths)))
            np.testing.assert_array_equal(host, np.arange(2, 201))  # a few ulps short: still the last point
    assert distance_points(np.float32([0.0, 0.99, 1.5]), 1.0, np).tolist() == [1, 1, 2]
    assert Sampling(sampling="distance", step=0.3).padded_points(np.float32([6.0])) == 24  # 21 points
    assert Sampling(sampling="distance", step=1.0).padded_points(np.float32([np.nextafter(8, 0)])) == 16  # 9


def test_fourier_direction_is_the_unit_basis_image():
    from spectral_jax.data import fourier

    d = directions_lib.table_directions("fourier", (8, 8, 1), fourier_index=(5, 6))
    want = fourier.fourier_basis_image(5, 6, 8, 8, 1)
    np.testing.assert_allclose(d[0], want / np.linalg.norm(want), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="outside the 8x8"):
        directions_lib.table_directions("fourier", (8, 8, 1), fourier_index=(9, 0))
    with pytest.raises(ConfigError, match=r"need inputs \[N, H, W, C\]"):
        directions_lib.table_directions("1/f", (64,))


def test_bad_inputs_are_clear_errors(setup):
    images, mean, std, variables, pairs = setup
    ev = LineEvaluator(linear_apply_fn, 24, chunk_lines=2)
    with pytest.raises(ConfigError, match=r"pair indices out of range: \[12\]"):
        ev(variables, images, np.array([[0, 12]]), mean, std)
    lines = direction_lines(np.zeros(12, int), "custom", length=1.0)
    with pytest.raises(ConfigError, match=r"directions must have shape \(4, 4, 2\)"):
        ev(variables, images, lines, mean, std, directions=np.ones((3, 3, 2)))
    with pytest.raises(ConfigError, match="non-zero"):
        ev(variables, images, lines, mean, std, directions=np.zeros((4, 4, 2)))
    with pytest.raises(ConfigError, match="integer array"):
        pair_lines(np.array([[0.5, 1.0]]))
    with pytest.raises(ConfigError, match="max_points"):
        LineEvaluator(linear_apply_fn, sampling="distance", step=0.01, max_points=64, chunk_lines=2)(
            variables, images, pairs, mean, std)
    with pytest.raises(ConfigError, match="num_points must be >= 8"):
        Sampling(num_points=4)
