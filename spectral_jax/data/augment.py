"""On-device training augmentation (docs/methods.md §5): pure, jittable, keyed by explicit PRNG keys.

`make_augment_fn(config, image_shape, num_classes, mean, std)` returns
`augment(key, images, targets) -> (images, targets)` for a standardized float batch
[B, H, W, C] and soft-label rows [B, K]. The chain, each stage off unless configured:

  batch level:  image_freq (f / 1/f patterns, §2.4)  ->  mixup
  per image:    policy (AutoAugment | RandAugment)  ->  pad-4 crop  ->  flip  ->  cutout

Each stage draws from `fold_in(key, its own id)`, so turning one stage on or off does not
change the randomness of the others. Everything works on per-batch copies: stored data is
never touched (unlike the reference's in-place `freq_augment`, §8 item 8). With every stage
off, `augment` returns its inputs unchanged.

`reference_pipeline_bug=True` reproduces the reference's pipeline, where the policy output is
discarded whenever flip/crop is on (§8 item 6): crop and flip then start from the image before
the policy.
"""

from __future__ import annotations

from typing import Callable

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.data import autoaugment_policies, fourier, image_ops
from spectral_jax.data.noise import smooth

CROP_PADDING = 4
AugmentFn = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

# Stage ids for fold_in: fixed, so each stage's randomness is independent of the others.
_IMAGE_FREQ, _MIXUP, _POLICY, _CROP, _FLIP, _CUTOUT = range(6)


# --------------------------------------------------------------------------------------
# Per-image augmentations on standardized batches [B, H, W, C].


def random_crop(key: jax.Array, images: jax.Array, padding: int = CROP_PADDING) -> jax.Array:
    """Zero-pad by `padding` (zero = the mean colour) and crop back to H×W at offsets drawn
    uniformly from {0, ..., 2·padding - 1} on each axis: the reference's range, which never
    reaches 2·padding (docs/methods.md §5, §8 item 14)."""
    b, h, w, c = images.shape
    offsets = jax.random.randint(key, (b, 2), 0, 2 * padding)
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Horizontal flip of each image with probability ½."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], pix.flip_left_right(images), images)


def cutout_box(centers: jax.Array, height: int, width: int, size: int) -> jax.Array:
    """bool [B, H, W]: rows and columns [c - size//2, c + size//2) around each centre (row, col)
    in `centers` [B, 2], clipped at the borders (so the square shrinks near the edges; an odd
    size covers size - 1, as in the reference)."""
    half = size // 2
    rows, cols = jnp.arange(height)[None, :], jnp.arange(width)[None, :]
    in_rows = (rows >= centers[:, :1] - half) & (rows < centers[:, :1] + half)  # [B, H]
    in_cols = (cols >= centers[:, 1:] - half) & (cols < centers[:, 1:] + half)  # [B, W]
    return in_rows[:, :, None] & in_cols[:, None, :]


def cutout(key: jax.Array, images: jax.Array, size: int) -> jax.Array:
    """Zero (the mean colour, all channels) a `cutout_box` around a centre uniform over the H×W grid."""
    b, h, w, _ = images.shape
    centers = jax.random.randint(key, (b, 2), 0, jnp.array([h, w]))
    box = cutout_box(centers, h, w, size)
    return jnp.where(box[..., None], jnp.zeros((), images.dtype), images)


# --------------------------------------------------------------------------------------
# Batch-level augmentations: they change targets too.


def mixup(key: jax.Array, images: jax.Array, targets: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array]:
    """One λ ~ Beta(α, α) per batch; each example mixed with a random partner (a permutation):
    x = λx + (1-λ)x_perm and the same for targets, so target rows still sum to 1."""
    k_lam, k_perm = jax.random.split(key)
    lam = jax.random.beta(k_lam, alpha, alpha).astype(images.dtype)
    perm = jax.random.permutation(k_perm, images.shape[0])
    return lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]


def image_freq_patterns(image_shape: tuple[int, int, int], magnitude: float) -> np.ndarray:
    """float32 [2, H, W, C]: the "f" and "1/f" composites (§2.4) scaled to L2 norm `magnitude`."""
    h, w, c = image_shape
    return np.stack([magnitude * fourier.unit_direction(fourier.fourier_composite_image(kind, h, w, c))
                     for kind in ("f", "1/f")]).astype(np.float32)


def image_freq(key: jax.Array, images: jax.Array, targets: jax.Array, patterns: jax.Array, probability: float,
               f_fraction: float, amplitude: float) -> tuple[jax.Array, jax.Array]:
    """Each example is chosen with `probability`; a chosen one gets the "f" pattern with
    probability `f_fraction`, else "1/f", added to the image, and its target row smoothed
    uniformly: y' = (1 - amplitude)·y + amplitude/K. No random sign or phase (as the reference)."""
    b, k = targets.shape
    k_pick, k_kind = jax.random.split(key)
    chosen = jax.random.uniform(k_pick, (b,)) < probability
    use_f = jax.random.uniform(k_kind, (b,)) < f_fraction
    pattern = jnp.where(use_f[:, None, None, None], patterns[0], patterns[1])
    images = images + jnp.where(chosen[:, None, None, None], pattern, 0.0).astype(images.dtype)
    return images, jnp.where(chosen[:, None], smooth(targets, amplitude, k), targets)


# --------------------------------------------------------------------------------------
# Policies: pixel-space ops between de- and re-standardization.


def autoaugment_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(op index [95, 2] into image_ops.OPS, probability [95, 2], level [95, 2])."""
    policy = autoaugment_policies.CIFAR10_POLICY
    ops = np.array([[image_ops.op_index(name) for name, _, _ in sub] for sub in policy], np.int32)
    probs = np.array([[p for _, p, _ in sub] for sub in policy], np.float32)
    levels = np.array([[lv for _, _, lv in sub] for sub in policy], np.float32)
    return ops, probs, levels


def policy_steps(pixels: jax.Array, valid: jax.Array, ops: jax.Array, levels: jax.Array, probs: jax.Array,
                 key: jax.Array, names: tuple[str, ...] = image_ops.OPS):
    """Applies op `names[ops[s]]` at `levels[s]` with probability `probs[s]`, for s in order.

    A scan, not an unrolled loop: XLA compiles one step once, and runs several steps of
    select-over-all-ops far faster than the unrolled graph (2-3× on CPU).
    """

    def step(carry, xs):
        p, v = carry
        op, level, prob, k = xs
        k_apply, k_op = jax.random.split(k)
        new_p, new_v = image_ops.apply_op(op, p, v, level, k_op, names=names)
        apply = jax.random.uniform(k_apply) < prob
        return (jnp.where(apply, new_p, p), jnp.where(apply, new_v, v)), None

    keys = jax.random.split(key, ops.shape[0])
    (pixels, valid), _ = jax.lax.scan(step, (pixels, valid), (ops, levels, probs, keys))
    return pixels, valid


def autoaugment_image(key: jax.Array, pixels: jax.Array, valid: jax.Array):
    """One of the 95 sub-policies, uniformly; each of its two ops applied with its probability."""
    ops, probs, levels = (jnp.asarray(t) for t in autoaugment_tables())
    k_pick, k_steps = jax.random.split(key)
    sub = jax.random.randint(k_pick, (), 0, ops.shape[0])
    return policy_steps(pixels, valid, ops[sub], levels[sub], probs[sub], k_steps)


def randaugment_image(key: jax.Array, pixels: jax.Array, valid: jax.Array, num_ops: int, magnitude: float):
    """`num_ops` ops drawn uniformly with replacement from the reference's 14, each at `magnitude`."""
    names = autoaugment_policies.RANDAUGMENT_OPS
    k_pick, k_steps = jax.random.split(key)
    ops = jax.random.randint(k_pick, (num_ops,), 0, len(names))
    levels = jnp.full((num_ops,), magnitude, jnp.float32)
    return policy_steps(pixels, valid, ops, levels, jnp.ones((num_ops,)), k_steps, names=names)


def apply_policy(key: jax.Array, images: jax.Array, mean: jax.Array, std: jax.Array,
                 policy_image: Callable) -> jax.Array:
    """De-standardize to integer pixels 0..255, run `policy_image(key, pixels, valid)` on each
    image, re-standardize; pixels left invalid (alpha 0) become 0, the mean colour."""
    # Rounded: the reference truncates, which float error turns into value - 1 for some pixels.
    pixels = jnp.clip(jnp.round((images * std + mean) * 255.0), 0.0, 255.0)
    valid = jnp.ones(images.shape[:3], images.dtype)
    keys = jax.random.split(key, images.shape[0])
    pixels, valid = jax.vmap(policy_image)(keys, pixels, valid)
    return jnp.where(valid[..., None] > 0, (pixels / 255.0 - mean) / std, 0.0).astype(images.dtype)


# --------------------------------------------------------------------------------------
# The chain.


def make_augment_fn(config, image_shape: tuple[int, int, int], num_classes: int, mean, std) -> AugmentFn:
    """`augment(key, images [B,H,W,C] standardized float, targets [B,K] soft labels)` for
    `config.augment`; `mean`/`std` [C] are the standardization in [0, 1] units (may be traced)."""
    g = config.augment
    image_shape = tuple(int(d) for d in image_shape)
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    freq = g.image_freq
    patterns = image_freq_patterns(image_shape, freq.magnitude) if freq.probability > 0 else None
    policy_image = {
        "none": None,
        "autoaugment": autoaugment_image,
        "randaugment": lambda k, p, v: randaugment_image(k, p, v, g.randaugment_num_ops, g.randaugment_magnitude),
    }[g.policy]
    if policy_image is not None and g.reference_pipeline_bug and g.flip_crop:
        policy_image = None  # the reference computes the policy, then crops the original image

    if patterns is None and not g.mixup_alpha and policy_image is None and not g.flip_crop and not g.cutout:
        return lambda key, images, targets: (images, targets)

    def augment(key, images, targets):
        if targets.shape[-1] != num_classes:
            raise ValueError(f"targets have {targets.shape[-1]} classes, expected {num_classes}.")
        if patterns is not None:
            images, targets = image_freq(jax.random.fold_in(key, _IMAGE_FREQ), images, targets, jnp.asarray(patterns),
                                         freq.probability, freq.f_fraction, freq.amplitude)
        if g.mixup_alpha > 0:
            images, targets = mixup(jax.random.fold_in(key, _MIXUP), images, targets, g.mixup_alpha)
        if policy_image is not None:
            images = apply_policy(jax.random.fold_in(key, _POLICY), images, mean, std, policy_image)
        if g.flip_crop:
            images = random_crop(jax.random.fold_in(key, _CROP), images)
            images = random_flip(jax.random.fold_in(key, _FLIP), images)
        if g.cutout:
            images = cutout(jax.random.fold_in(key, _CUTOUT), images, g.cutout)
        return images, targets

    return augment
