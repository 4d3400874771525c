"""Input checks before compute (docs/analysis.md "Input checks"): bad images, model outputs,
labels and train-mode models are one-line ConfigErrors; valid inputs give the same numbers as
without the checks, and the numbers do not depend on the forward batch."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import spectral_jax
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import checks

SMALL = dict(num_points=24, pairs_per_class=3, pairs_per_class_pair=1, chunk_lines=8)


def linear(w, x):
    return x.reshape(len(x), -1) @ w


def spectra(apply_fn, w, images, labels=None, **kw):
    return spectral_jax.interpolation_spectra(apply_fn, w, images, labels, **{**SMALL, **kw})


class BatchNormNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.head = nnx.Linear(64, 4, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv(x)))
        return self.head(x.reshape(len(x), -1))


def split(train: bool):
    """A user's NNX model as (apply_fn, state), split in train or eval mode."""
    model = BatchNormNet(nnx.Rngs(0))
    model.train() if train else model.eval()
    graphdef, state = nnx.split(model)
    return (lambda s, x: nnx.merge(graphdef, s)(x)), state


def test_non_finite_inputs_are_named(linear_model):
    w, images, labels = linear_model
    bad = images.copy()
    bad[[0, 13]] = np.nan
    with pytest.raises(ConfigError, match=r"2 of the 24 inputs the lines use are not finite .*: images 0, 13\."):
        spectra(linear, w, bad, labels)
    with pytest.raises(ConfigError, match=r"24 of the 24 inputs .*images 0, 1, 2, 3, 4, \.\.\."):
        spectra(linear, w, images * np.nan, labels)
    bad[5, 0, 0, 0] = np.inf
    with pytest.raises(ConfigError, match=r"not finite \(NaN or Inf\): x1\[1\]\."):
        spectra(linear, w, images, x0=images[:3], x1=bad[4:7])
    with pytest.raises(ConfigError, match=r"1 of the 2 directions are not finite .*rows 1"):
        spectra(linear, w, images, labels, directions=np.stack([images[0], bad[0]]), images_per_class=1)
    with pytest.raises(ConfigError, match="std > 0"):
        spectra(linear, w, images, labels, mean=[0.0], std=[0.0])


@pytest.mark.parametrize("output, phrase", [
    (lambda z: z[:, 0], r"returned float32\[4\] .*expected float logits \[4, K\] with K >= 2.*binary"),
    (lambda z: z.T, r"logits \[K, B\]\? return logits.T"),  # K = B = 4: told by a second batch size
    (lambda z: jnp.broadcast_to(z[:, None, None], (len(z), 2, 2, 4)), r"float32\[4, 2, 2, 4\].*per position"),
    (lambda z: (z, 0), r"one array of logits; it returned a tuple \(float32\[4, 4\], int32\[\]\)"),
    (lambda z: jnp.argmax(z, -1), r"int32\[4\].*not predicted classes"),
])
def test_model_output_must_be_float_logits_b_k(linear_model, output, phrase):
    w, images, labels = linear_model
    with pytest.raises(ConfigError, match=phrase):
        spectra(lambda w, x: output(linear(w, x)), w, images, labels)


def test_a_failing_apply_fn_is_explained_and_chained(linear_model):
    w, images, labels = linear_model
    with pytest.raises(ConfigError, match=r"fails on a probe batch float32\[4, 4, 4, 1\].*NHWC.*cannot reshape") as e:
        spectra(lambda w, x: x.reshape(len(x), 15) @ w, w, images, labels)
    assert isinstance(e.value.__cause__, TypeError) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="NaN or Inf logits for finite probe images"):
        spectra(linear, w * np.nan, images, labels)
    with pytest.raises(ConfigError, match=r"look NCHW \[N, C, H, W\].*transpose\(0, 2, 3, 1\)"):
        spectra(linear, jnp.ones((64, 4)), images.reshape(40, 1, 8, 2).repeat(4, -1), labels)


def test_labels(linear_model):
    w, images, labels = linear_model
    with pytest.raises(ConfigError, match=r"classes in \[0, 4\) .*hold 4, 5, 6, 7 at images 0, 1, 2"):
        spectra(linear, w, images, labels + 4, signal="class_logit")
    with pytest.raises(ConfigError, match=r"classes >= 0 \(-1, no label, only for .* x0\); got -1 at images 0, 4"):
        spectra(linear, w, images, np.where(labels == 0, -1, labels))
    with pytest.raises(ConfigError, match=r"look one-hot .*pass labels.argmax\(-1\)"):
        spectra(linear, w, images, np.eye(4)[labels])
    with pytest.raises(ConfigError, match="not whole numbers: 0.5"):
        spectra(linear, w, images, labels + 0.5, pairs=np.array([[0, 1]]))
    with pytest.raises(ConfigError, match=r"one entry per image \(40\), got 5"):
        spectra(linear, w, images, labels[:5], directions=images[0])
    # Integer-valued floats are classes; with x0/x1, -1 is "no label": the class predicted at x0.
    np.testing.assert_array_equal(spectra(linear, w, images, labels.astype(float))["hf_power"],
                                  spectra(linear, w, images, labels)["hf_power"])
    ends = dict(x0=images[:3], x1=images[3:6], signal="class_logit")
    unlabeled = spectra(linear, w, images, **ends)
    np.testing.assert_array_equal(spectra(linear, w, images, np.array([-1, -1, -1]), **ends)["hf_power"],
                                  unlabeled["hf_power"])
    with pytest.raises(ConfigError, match="got -2 at x0 rows 0"):
        spectra(linear, w, images, np.array([-2, 1, 1]), **ends)
    with pytest.raises(ConfigError, match=r"classes in \[0, 4\).*hold 9 at x0 rows 2"):
        spectra(linear, w, images, np.array([-1, 1, 9]), **ends)


def test_train_mode_models_are_an_error_at_every_forward_batch(linear_model):
    _, images, labels = linear_model
    apply_fn, state = split(train=True)
    for forward_batch in (0, 8, 64):  # 0 with chunk_lines: one forward pass per chunk, which ran before
        with pytest.raises(ConfigError, match=r"train mode.*call model.eval\(\) before nnx.split"):
            spectra(apply_fn, state, images, labels, forward_batch=forward_batch,
                    chunk_lines=0 if forward_batch else 8)
    # A function that normalizes over the batch runs traced, but its logits depend on the batch.
    eval_fn, state = split(train=False)
    with pytest.raises(ConfigError, match=r"depend on the batch they are evaluated in.*model.eval\(\)"):
        spectra(lambda s, x: eval_fn(s, x - x.mean(0)), state, images, labels)


def test_results_do_not_depend_on_the_forward_batch(linear_model):
    _, images, labels = linear_model
    apply_fn, state = split(train=False)
    for chunk_lines in (0, 16):
        a, b = (spectra(apply_fn, state, images, labels, forward_batch=fb, chunk_lines=chunk_lines) for fb in (8, 64))
        for name in ("hf_power", "max_grad", "hf_fraction", "logit_distance", "power"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-9, err_msg=name)


def test_checks_do_not_change_the_numbers(linear_model, monkeypatch):
    w, images, labels = linear_model
    apply_fn, state = split(train=False)
    runs = [lambda: spectra(apply_fn, state, images, labels, signal="class_logit"),
            lambda: spectra(linear, w, images, x0=images[:3], x1=images[3:6])]
    checked = [r() for r in runs]
    monkeypatch.setattr(checks, "check_inputs", lambda *a, **k: None)
    for got, run in zip(checked, runs):
        want = run()
        for k in want.arrays:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
