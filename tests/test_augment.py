"""On-device augmentation: each stage, the AutoAugment/RandAugment ops (against PIL), the chain,
the config keys, and one epoch of the foundation loop on mocked CIFAR-10 with every stage on."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from spectral_jax import config as config_lib
from spectral_jax.config import ConfigError, base_config
from spectral_jax.data import augment, autoaugment_policies, fourier, image_ops

MEAN = np.array([0.49139968, 0.48215841, 0.44653091], np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], np.float32)


def _batch(b=8, h=32, w=32, seed=0):
    u8 = np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)
    images = jnp.asarray((u8 / 255.0 - MEAN) / STD, jnp.float32)
    return images, jax.nn.one_hot(jnp.arange(b) % 10, 10)


def _config(**augment):
    c = base_config()
    for key, value in augment.items():
        if key.startswith("image_freq_"):
            c.augment.image_freq[key[len("image_freq_"):]] = value
        else:
            c.augment[key] = value
    config_lib.validate(c)
    return c


# --------------------------------------------------------------------------------------
# Stages


def test_everything_off_is_identity():
    images, targets = _batch()
    fn = augment.make_augment_fn(base_config(), (32, 32, 3), 10, MEAN, STD)
    out_images, out_targets = fn(jax.random.key(0), images, targets)
    assert out_images is images and out_targets is targets


def test_crop_offsets_cover_exactly_0_to_7():
    n, side = 4000, 12
    marker = (1 + np.arange(side * side, dtype=np.float32)).reshape(1, side, side, 1)  # 1 + r*12 + c
    images = jnp.asarray(np.broadcast_to(marker, (n, side, side, 1)))
    out = np.asarray(jax.jit(augment.random_crop)(jax.random.key(3), images))
    assert out.shape == images.shape and out.dtype == np.float32
    code = out[:, 4, 4, 0].astype(int) - 1  # out[4, 4] = image[oy, ox] for offsets (oy, ox) in 0..7
    oy, ox = code // side, code % side
    assert set(oy.tolist()) == set(range(8)) and set(ox.tolist()) == set(range(8))  # never 8 (reference)
    assert np.bincount(oy, minlength=8).min() > n / 8 * 0.8  # uniform
    # The whole crop is the padded image's window at that offset (zero = padding).
    padded = np.pad(marker[0, :, :, 0], 4)
    for i in range(5):
        np.testing.assert_array_equal(out[i, :, :, 0], padded[oy[i]:oy[i] + side, ox[i]:ox[i] + side])


def test_flip_is_mirror_half_the_time():
    images, _ = _batch(b=400, h=4, w=5)
    out = np.asarray(augment.random_flip(jax.random.key(1), images))
    same = np.all(out == np.asarray(images), axis=(1, 2, 3))
    mirrored = np.all(out == np.asarray(images)[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 150 < mirrored.sum() < 250


@pytest.mark.parametrize("center, rows, cols", [
    ((10, 10), (2, 18), (2, 18)),  # inside: the full 16×16
    ((0, 0), (0, 8), (0, 8)),  # clipped at the top-left corner
    ((31, 16), (23, 32), (8, 24)),  # clipped at the bottom edge
    ((3, 27), (0, 11), (19, 32)),
])
def test_cutout_box_clipping(center, rows, cols):
    box = np.asarray(augment.cutout_box(jnp.array([center]), 32, 32, 16))[0]
    expected = np.zeros((32, 32), bool)
    expected[rows[0]:rows[1], cols[0]:cols[1]] = True
    np.testing.assert_array_equal(box, expected)


def test_cutout_zeroes_a_clipped_square_in_every_channel():
    images = jnp.ones((500, 32, 32, 3))
    out = np.asarray(augment.cutout(jax.random.key(2), images, 16))
    zero = out == 0
    assert np.all(zero.all(-1) == zero.any(-1))  # all channels together
    heights = zero[..., 0].any(2).sum(1)
    widths = zero[..., 0].any(1).sum(1)
    np.testing.assert_array_equal(zero[..., 0].sum((1, 2)), heights * widths)  # a rectangle
    assert heights.min() >= 8 and heights.max() == 16 and widths.min() >= 8 and widths.max() == 16
    assert (heights < 16).mean() > 0.3  # centres within 8 of a border: 15/32 of them


def test_mixup_mixes_images_and_targets_alike():
    b = 16
    images, _ = _batch(b=b, h=4, w=4)
    targets = jnp.eye(b)  # one class per example, so targets say who was mixed with whom
    out_images, out_targets = augment.mixup(jax.random.key(5), images, targets, alpha=1.0)
    np.testing.assert_allclose(np.asarray(out_targets).sum(1), 1.0, rtol=1e-6)
    expected = np.einsum("ij,jhwc->ihwc", np.asarray(out_targets), np.asarray(images))
    np.testing.assert_allclose(np.asarray(out_images), expected, rtol=1e-5, atol=1e-5)
    diag = np.diag(np.asarray(out_targets))  # λ for every example not paired with itself
    mixed = diag < 1 - 1e-6
    assert mixed.sum() >= b // 2 and np.allclose(diag[mixed], diag[mixed][0])  # one λ per batch


def test_image_freq_adds_the_pattern_and_smooths_labels():
    images, targets = _batch(b=64, h=8, w=8)
    patterns = augment.image_freq_patterns((8, 8, 3), magnitude=4.0)
    np.testing.assert_allclose(np.linalg.norm(patterns.reshape(2, -1), axis=1), 4.0, rtol=1e-5)
    f_dir = fourier.unit_direction(fourier.fourier_composite_image("f", 8, 8, 3))
    np.testing.assert_allclose(patterns[0], 4.0 * f_dir, atol=1e-5)

    out, out_t = augment.image_freq(jax.random.key(0), images, targets, jnp.asarray(patterns), 1.0, 1.0, 0.5)
    np.testing.assert_allclose(np.asarray(out - images), np.broadcast_to(patterns[0], out.shape), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out_t), 0.5 * np.asarray(targets) + 0.05, rtol=1e-6)

    out, out_t = augment.image_freq(jax.random.key(1), images, targets, jnp.asarray(patterns), 0.5, 0.5, 0.5)
    changed = np.any(np.asarray(out) != np.asarray(images), axis=(1, 2, 3))
    smoothed = np.any(np.asarray(out_t) != np.asarray(targets), axis=1)
    np.testing.assert_array_equal(changed, smoothed)
    assert 16 < changed.sum() < 48
    np.testing.assert_allclose(np.asarray(out_t).sum(1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Policy ops


def _pixels(seed=0, side=32):
    u8 = np.random.default_rng(seed).integers(30, 220, (side, side, 3), dtype=np.uint8)
    return u8, jnp.asarray(u8, jnp.float32), jnp.ones((side, side))


IDENTITY_AT_LEVEL_0 = ("Identity", "Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "Solarize", "Cutout")


@pytest.mark.parametrize("name", image_ops.OPS)
def test_ops_at_level_0_are_identity_where_the_op_allows(name):
    _, pixels, valid = _pixels()
    out, out_valid = image_ops.run_op(name, pixels, valid, 0, jax.random.key(0))
    assert out.shape == pixels.shape and out.dtype == pixels.dtype and out_valid.shape == valid.shape
    if name in IDENTITY_AT_LEVEL_0:
        np.testing.assert_array_equal(out, pixels)
        np.testing.assert_array_equal(out_valid, valid)
    else:  # level 0 is a real change here (e.g. enhance factor 0.1, posterize to 4 bits)
        assert np.any(np.asarray(out) != np.asarray(pixels))


@pytest.mark.parametrize("name", ["Color", "Contrast", "Brightness", "Sharpness"])
def test_enhance_ops_at_level_5_are_identity(name):
    _, pixels, valid = _pixels()
    out, _ = image_ops.run_op(name, pixels, valid, 5, jax.random.key(0))
    np.testing.assert_array_equal(out, pixels)


def test_level_to_param_matches_the_reference_table():
    p = image_ops.level_to_param
    assert float(p("Rotate", 10)) == 30 and float(p("Rotate", 7)) == 21
    assert float(p("ShearX", 10)) == pytest.approx(0.3) and float(p("ShearY", 3)) == pytest.approx(0.09)
    assert float(p("TranslateX", 9)) == 9 and float(p("TranslateY", 4)) == 4
    assert float(p("Posterize", 0)) == 4 and float(p("Posterize", 3)) == 3 and float(p("Posterize", 10)) == 0
    assert float(p("Solarize", 0)) == 256 and float(p("Solarize", 3)) == 256 - 76
    assert float(p("Color", 0)) == pytest.approx(0.1) and float(p("Sharpness", 10)) == pytest.approx(1.9)
    assert float(p("Cutout", 4)) == 8 and float(p("Cutout", 4, side=16)) == 4  # pixels scale with the side


def _alpha_composite(pil_rgba):
    a = np.asarray(pil_rgba)
    return a[..., :3].astype(np.float32), (a[..., 3] > 0).astype(np.float32)


@pytest.mark.parametrize("name, param, reference", [
    ("AutoContrast", None, lambda im: ImageOps.autocontrast(im.convert("RGB"))),
    ("Equalize", None, lambda im: ImageOps.equalize(im.convert("RGB"))),
    ("Invert", None, lambda im: ImageOps.invert(im.convert("RGB"))),
    ("Posterize", 2, lambda im: ImageOps.posterize(im.convert("RGB"), 2)),
    ("Solarize", 100, lambda im: ImageOps.solarize(im.convert("RGB"), 100)),
    ("Color", 0.46, lambda im: ImageEnhance.Color(im).enhance(0.46)),
    ("Contrast", 1.72, lambda im: ImageEnhance.Contrast(im).enhance(1.72)),
    ("Brightness", 0.28, lambda im: ImageEnhance.Brightness(im).enhance(0.28)),
    ("Sharpness", 1.9, lambda im: ImageEnhance.Sharpness(im).enhance(1.9)),
    ("Rotate", -21, lambda im: im.rotate(-21)),
    ("ShearX", 0.27, lambda im: im.transform((32, 32), Image.AFFINE, (1, 0.27, 0, 0, 1, 0))),
    ("ShearY", -0.09, lambda im: im.transform((32, 32), Image.AFFINE, (1, 0, 0, -0.09, 1, 0))),
    ("TranslateX", -7, lambda im: im.transform((32, 32), Image.AFFINE, (1, 0, -7, 0, 1, 0))),
    ("TranslateY", 9, lambda im: im.transform((32, 32), Image.AFFINE, (1, 0, 0, 0, 1, 9))),
])
def test_ops_match_pil(name, param, reference):
    u8, pixels, valid = _pixels(seed=4)
    fn = image_ops._OPS[name][0]
    out, out_valid = fn(pixels, valid) if param is None else fn(pixels, valid, param)
    ref, ref_valid = _alpha_composite(reference(Image.fromarray(u8).convert("RGBA")).convert("RGBA"))
    np.testing.assert_array_equal(np.asarray(out), ref)
    np.testing.assert_array_equal(np.asarray(out_valid), ref_valid)


def test_geometric_ops_leave_invalid_pixels_that_become_the_mean_colour():
    images, _ = _batch(b=2)

    def rotate_only(key, pixels, valid):
        return image_ops.rotate(pixels, valid, 30.0)

    out = np.asarray(augment.apply_policy(jax.random.key(0), images, MEAN, STD, rotate_only))
    corner = out[:, 0, 0]  # rotated away: alpha 0 -> standardized 0
    np.testing.assert_array_equal(corner, 0.0)
    center = out[:, 14:18, 14:18]
    assert np.all(center != 0)


def test_policy_round_trip_is_exact_for_uint8_data():
    images, _ = _batch(b=4)
    out = augment.apply_policy(jax.random.key(0), images, MEAN, STD, lambda k, p, v: (p, v))
    np.testing.assert_allclose(np.asarray(out), np.asarray(images), atol=1e-5)


def test_autoaugment_tables_are_the_95_cifar_sub_policies():
    ops, probs, levels = augment.autoaugment_tables()
    assert ops.shape == probs.shape == levels.shape == (95, 2)
    assert len(autoaugment_policies.CIFAR10_POLICY) == 4 * 5 + 7 * 5 + 8 * 5
    assert autoaugment_policies.CIFAR10_POLICY[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    assert autoaugment_policies.CIFAR10_POLICY[-1] == (("Equalize", 0.6, 9), ("Equalize", 0.4, 4))
    assert {image_ops.OPS[i] for i in ops.ravel()} == {
        "Invert", "Contrast", "Rotate", "TranslateX", "Sharpness", "ShearY", "TranslateY", "AutoContrast",
        "Equalize", "Solarize", "Color", "Posterize", "Brightness", "Cutout", "ShearX"}
    assert np.all((probs >= 0) & (probs <= 1)) and np.all((levels >= 0) & (levels <= 10))
    assert len(autoaugment_policies.RANDAUGMENT_OPS) == 14


# --------------------------------------------------------------------------------------
# The chain, jitted


@pytest.fixture(scope="module")
def full_chain():
    c = _config(flip_crop=True, cutout=16, mixup_alpha=0.4, policy="autoaugment", image_freq_probability=0.5)
    return jax.jit(augment.make_augment_fn(c, (32, 32, 3), 10, MEAN, STD))


def test_full_chain_shapes_dtypes_determinism(full_chain):
    images, targets = _batch(b=8)
    a = full_chain(jax.random.key(7), images, targets)
    b = full_chain(jax.random.key(7), images, targets)
    c = full_chain(jax.random.key(8), images, targets)
    assert a[0].shape == images.shape and a[0].dtype == images.dtype
    assert a[1].shape == targets.shape and a[1].dtype == targets.dtype
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_allclose(np.asarray(a[1]).sum(1), 1.0, rtol=1e-5)  # mixup + smoothing keep sums


def test_randaugment_chain_deterministic_and_changes_images():
    c = _config(policy="randaugment", randaugment_num_ops=2, randaugment_magnitude=9)
    fn = jax.jit(augment.make_augment_fn(c, (32, 32, 3), 10, MEAN, STD))
    images, targets = _batch(b=8)
    a, b = fn(jax.random.key(1), images, targets), fn(jax.random.key(1), images, targets)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] is not None and np.array_equal(np.asarray(a[1]), np.asarray(targets))  # labels untouched
    changed = np.any(np.asarray(a[0]) != np.asarray(images), axis=(1, 2, 3))
    assert changed.sum() >= 6  # 14 ops, 2 each, mostly non-identity at magnitude 9


def test_reference_pipeline_bug_discards_the_policy_under_flip_crop():
    images, targets = _batch(b=8, h=16, w=16)
    key = jax.random.key(3)

    def run(**kw):
        fn = jax.jit(augment.make_augment_fn(_config(**kw), (16, 16, 3), 10, MEAN, STD))
        return np.asarray(fn(key, images, targets)[0])

    plain = run(flip_crop=True)
    fixed = run(flip_crop=True, policy="randaugment", randaugment_num_ops=1, randaugment_magnitude=9)
    buggy = run(flip_crop=True, policy="randaugment", randaugment_num_ops=1, randaugment_magnitude=9,
                reference_pipeline_bug=True)
    np.testing.assert_array_equal(buggy, plain)  # the policy output is thrown away
    assert not np.array_equal(fixed, plain)
    no_crop_buggy = run(policy="randaugment", randaugment_num_ops=1, reference_pipeline_bug=True)
    no_crop = run(policy="randaugment", randaugment_num_ops=1)
    np.testing.assert_array_equal(no_crop_buggy, no_crop)  # without flip/crop the bug changes nothing


# --------------------------------------------------------------------------------------
# Config


def test_augment_defaults_validate_and_are_off():
    c = base_config()
    config_lib.validate(c)
    assert c.train_size == 0 and not c.augment.flip_crop and c.augment.cutout == 0
    assert c.augment.mixup_alpha == 0 and c.augment.policy == "none" and c.augment.image_freq.probability == 0
    assert c.augment.reference_pipeline_bug is False


@pytest.mark.parametrize("override, message", [
    (("augment.policy", "autoaug"), "valid choices: none, autoaugment, randaugment"),
    (("augment.cutout", "-1"), "augment.cutout"),
    (("augment.mixup_alpha", "-0.1"), "augment.mixup_alpha"),
    (("augment.randaugment_magnitude", "11"), r"in \[0, 10\]"),
    (("augment.randaugment_num_ops", "0"), "augment.randaugment_num_ops"),
    (("augment.image_freq.probability", "1.5"), r"in \[0, 1\]"),
    (("augment.image_freq.f_fraction", "-1"), "augment.image_freq.f_fraction"),
    (("train_size", "-5"), "train_size"),
])
def test_bad_augment_values_are_config_errors(override, message):
    c = base_config()
    config_lib.apply_overrides(c, [override])
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(c)


# --------------------------------------------------------------------------------------
# End to end: the foundation loop, one epoch on mocked CIFAR-10, every stage on


def test_train_one_epoch_on_mocked_cifar10_with_full_chain(tmp_path):
    import tensorflow_datasets as tfds

    from spectral_jax.train import train_and_evaluate

    c = _config(flip_crop=True, cutout=16, mixup_alpha=0.1, policy="autoaugment", image_freq_probability=0.5)
    c.dataset, c.model, c.train_size, c.epochs, c.batch_size, c.eval_batch_size = "cifar10", "cnn", 64, 1, 32, 64
    c.ckpt_keep, c.ckpt_every_epochs = 1, 1
    with tfds.testing.mock_data(num_examples=96):
        summary = train_and_evaluate(c, tmp_path / "run", quiet=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 2  # 64 examples / batch 32
    assert np.isfinite(records[0]["train_loss"]) and 0 <= records[0]["test_acc"] <= 1
    assert summary["epochs_done"] == 1 and summary["last_step"] == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["augment"]["policy"] == "autoaugment" and saved["train_size"] == 64
