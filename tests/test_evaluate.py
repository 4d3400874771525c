"""The compiled line evaluator: one trace for many chunks and checkpoints, same numbers as
an unchunked computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax.data import standardize
from spectral_jax.spectral import LineEvaluator, line_points, line_statistics


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


def test_compiles_once_for_many_chunks_and_checkpoints(setup):
    images, mean, std, variables, pairs = setup
    ev = LineEvaluator(linear_apply_fn, num_points=16, chunk_lines=3)  # 10 lines -> 4 chunks, last padded
    out = ev(variables, jax.device_put(images), pairs, mean, std)
    assert ev.trace_count == 1
    other = jax.tree.map(lambda x: 2 * x, variables)  # "another checkpoint"
    ev(other, jax.device_put(images), pairs, mean, std)
    assert ev.trace_count == 1
    assert out["logits"].shape == (10, 16, 5)
    assert out["power"].shape == (10, 9)
    for name in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end", "logit_distance"):
        assert out[name].shape == (10,)


def test_chunked_equals_direct_computation(setup):
    images, mean, std, variables, pairs = setup
    out = LineEvaluator(linear_apply_fn, num_points=16, chunk_lines=4)(variables, jnp.asarray(images), pairs, mean, std)
    x = standardize(jnp.asarray(images), mean, std)
    x0, x1 = x[pairs[:, 0]], x[pairs[:, 1]]
    pts = line_points(x0, x1, 16)
    logits = linear_apply_fn(variables, pts.reshape((-1,) + pts.shape[2:])).reshape(10, 16, 5)
    want = line_statistics(logits, jnp.linalg.norm((x1 - x0).reshape(10, -1), axis=-1))
    np.testing.assert_allclose(out["logits"], np.asarray(logits), rtol=1e-5, atol=1e-5)
    for name, v in want.items():
        np.testing.assert_allclose(out[name], np.asarray(v), rtol=1e-4, atol=1e-7, err_msg=name)


def test_float_images_need_no_standardization(setup):
    images, mean, std, variables, pairs = setup
    x = standardize(jnp.asarray(images), mean, std)
    ev = LineEvaluator(linear_apply_fn, num_points=16, chunk_lines=4)
    a = ev(variables, jnp.asarray(images), pairs, mean, std)
    b = ev(variables, x, pairs)
    np.testing.assert_allclose(a["hf_power"], b["hf_power"], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="uint8"):
        ev(variables, jnp.asarray(images), pairs)


def test_line_with_equal_ends_is_constant(setup):
    images, mean, std, variables, _ = setup
    out = LineEvaluator(linear_apply_fn, num_points=16, chunk_lines=2)(
        variables, jnp.asarray(images), np.array([[3, 3], [4, 5]]), mean, std)
    # Interpolating x0 with itself moves the output only by float round-off: counted as constant.
    assert out["hf_fraction"][0] == 0 and out["centroid"][0] == 0 and out["max_grad"][0] == 0
    assert out["hf_fraction"][1] > 0
