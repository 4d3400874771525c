"""Frequency-modulated label smoothing: the noise functions of noise fitting (docs/methods.md §2.1).

Each example's label row y is smoothed with a strength that is a sinusoid of a scalar
feature g(x) of its (augmented, standardized) image:

    s(x)  = 1 + sin(2 pi f g(x))                    in [0, 2]
    eps_i = a s_i / mean_j s_j    (normalize=True; the batch mean of eps is a)   or   a s_i
    y'    = (1 - eps) y + eps / K

with g(x) = ||x|| - phi_D (`radial`; phi_D = E||z||, z ~ N(0, I_D), D = H*W*C: 55.4211... for
32x32x3) or g(x) = <x, d> for a unit direction d (`fourier`, `random`, `f`, `1/f`), and
eps = a for `uniform` (the frequency-0 control). `class_index = c >= 0` perturbs only rows whose
label argmax is c (the normalization still uses the whole batch). A pure function of
(images, labels, config): it runs per batch, after augmentation, and never edits stored data.

Noise fitting (docs/methods.md §2.2, §10) measures how much of such a noise function a model has
fitted, on a held-out set in evaluation mode, with y the one-hot labels, y' the noisy labels and
p the model's softmax:

    clean_loss     = mean CE(y, p)          noisy_loss = mean CE(y', p)
    noise_fitting  = clean_loss - noisy_loss           (no offset)
    oracle         = the noise fitting of p = y' exactly: mean [CE(y, y') - CE(y', y')]
    oracle_uniform = the same for uniform smoothing of equal amplitude (eps = a everywhere)

`noise_fitting_terms` gives these per example; the training loop sums them every epoch.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectral_jax.data import fourier
from spectral_jax.data.dataset import standardize

NOISE_TYPES = ("none", "radial", "fourier", "random", "f", "1/f", "uniform")
FREQUENCY_UNITS = ("absolute", "data_std")
DIRECTION_TYPES = ("fourier", "random", "f", "1/f")


def chi_mean(dof: int) -> float:
    """E||z|| for z ~ N(0, I_dof): sqrt(2) Gamma((dof+1)/2) / Gamma(dof/2)."""
    return math.sqrt(2.0) * math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2))


def noise_direction(kind: str, image_shape: tuple[int, int, int], *, seed: int = 0,
                    spatial_frequency: float = 2.0) -> np.ndarray:
    """Unit-norm float32 direction [H, W, C] for the projection noise types."""
    if kind == "random":
        d = np.random.RandomState(seed).normal(size=int(np.prod(image_shape))).reshape(image_shape)
    elif kind in ("fourier", "f", "1/f"):
        h, w, c = image_shape
        if kind == "fourier":
            d = fourier.fourier_basis_image(*fourier.spatial_frequency_index(spatial_frequency, h, w), h, w, c)
        else:
            d = fourier.fourier_composite_image(kind, h, w, c)
    else:
        raise ValueError(f"{kind!r} has no direction; direction types: {', '.join(DIRECTION_TYPES)}.")
    return fourier.unit_direction(np.asarray(d, np.float64)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LabelNoise:
    """A noise function with its frequency already in absolute units (cycles per unit of g)."""

    kind: str
    frequency: float
    amplitude: float
    num_classes: int
    normalize: bool = True
    class_index: int = -1
    phase: float = 0.0  # phi_D for radial noise
    direction: np.ndarray | None = None  # unit [H, W, C] for projection noise

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def feature(self, images: jax.Array) -> jax.Array:
        """g(x) for standardized images [B, H, W, C] -> [B]."""
        flat = images.reshape(images.shape[0], -1).astype(jnp.float32)
        if self.kind == "radial":
            return jnp.linalg.norm(flat, axis=-1) - self.phase
        if self.direction is not None:
            return flat @ jnp.asarray(self.direction.reshape(-1))
        return jnp.zeros(images.shape[0], jnp.float32)

    def epsilon(self, images: jax.Array, labels_argmax: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Per-example smoothing eps [B]; `mask` [B] excludes padding from the batch mean."""
        b = images.shape[0]
        mask = jnp.ones(b, jnp.float32) if mask is None else mask.astype(jnp.float32)
        if self.kind == "none":
            return jnp.zeros(b, jnp.float32)
        if self.kind == "uniform":
            eps = jnp.full(b, self.amplitude, jnp.float32)
        else:
            s = 1.0 + jnp.sin(2.0 * jnp.pi * self.frequency * self.feature(images))
            if self.normalize:
                mean_s = jnp.sum(s * mask) / jnp.maximum(jnp.sum(mask), 1.0)
                eps = jnp.where(mean_s != 0, self.amplitude * s / jnp.where(mean_s != 0, mean_s, 1.0), 0.0)
            else:
                eps = self.amplitude * s
        if self.class_index >= 0:
            eps = jnp.where(labels_argmax == self.class_index, eps, 0.0)
        return eps * mask

    def __call__(self, images: jax.Array, targets: jax.Array, mask: jax.Array | None = None):
        """(images [B,H,W,C] standardized, targets [B,K] rows summing to 1) -> (noisy targets, eps [B])."""
        eps = self.epsilon(images, jnp.argmax(targets, axis=-1), mask)
        return smooth(targets, eps[:, None], self.num_classes), eps


def smooth(targets: jax.Array, eps, num_classes: int) -> jax.Array:
    """y' = (1 - eps) y + eps / K: label smoothing, rows still sum to 1."""
    return (1.0 - eps) * targets + eps / num_classes


def make_label_noise(noise_config, image_shape: tuple[int, int, int], num_classes: int,
                     feature_std: float | None = None) -> LabelNoise:
    """From the `noise.*` config group. With `frequency_unit="data_std"`, `feature_std` (the std of
    g(x) over the training set, see `feature_std`) converts cycles per std to cycles per unit."""
    kind = noise_config.type
    if kind not in NOISE_TYPES:
        raise ValueError(f"Unknown noise.type {kind!r}; valid: {', '.join(NOISE_TYPES)}.")
    frequency = float(noise_config.frequency)
    if noise_config.frequency_unit == "data_std" and kind not in ("none", "uniform"):
        if not feature_std:
            raise ValueError("noise.frequency_unit='data_std' needs the std of the noise feature over the data.")
        frequency = frequency / feature_std
    direction = None
    if kind in DIRECTION_TYPES:
        direction = noise_direction(kind, image_shape, seed=noise_config.seed,
                                    spatial_frequency=noise_config.spatial_frequency)
    return LabelNoise(
        kind=kind, frequency=frequency, amplitude=float(noise_config.amplitude), num_classes=num_classes,
        normalize=bool(noise_config.normalize), class_index=int(noise_config.class_index),
        phase=chi_mean(int(np.prod(image_shape))) if kind == "radial" else 0.0, direction=direction,
    )


def feature_std(noise: LabelNoise, images_u8, mean, std, batch_size: int = 1024) -> float:
    """std of g(x) over a whole (un-augmented) split, uint8 [N,H,W,C] on the host or a device:
    the unit of `frequency_unit="data_std"`."""
    @jax.jit
    def features(batch):
        return noise.feature(standardize(batch, mean, std))

    g = np.concatenate([np.asarray(features(images_u8[i:i + batch_size]))
                        for i in range(0, images_u8.shape[0], batch_size)])
    return float(g.astype(np.float64).std())


# --------------------------------------------------------------------------------------
# Noise fitting: per-example terms and their summaries.

# Targets with eps > K/(K-1) have a negative true-class entry; the oracle predictor is then
# clipped to this floor (and renormalized) so that its cross-entropy stays finite.
ORACLE_FLOOR = 1e-7


def distribution_cross_entropy(targets: jax.Array, probs: jax.Array) -> jax.Array:
    """-sum_k y_k log p_k for a predictor that outputs the distribution `probs` itself."""
    p = jnp.maximum(probs, ORACLE_FLOOR)
    p = p / jnp.sum(p, axis=-1, keepdims=True)
    return -jnp.sum(targets * jnp.log(p), axis=-1)


def oracle_terms(onehot: jax.Array, noisy: jax.Array) -> jax.Array:
    """Per-example noise fitting of the predictor p = y': CE(y, y') - CE(y', y')."""
    return distribution_cross_entropy(onehot, noisy) - distribution_cross_entropy(noisy, noisy)


def noise_fitting_terms(logits: jax.Array, onehot: jax.Array, noisy: jax.Array, amplitude: float,
                        num_classes: int) -> dict[str, jax.Array]:
    """clean, noisy, oracle and oracle_uniform CE terms per example [B] (their means give the metrics)."""
    logits = logits.astype(jnp.float32)
    return {
        "clean": optax.softmax_cross_entropy(logits, onehot),
        "noisy": optax.softmax_cross_entropy(logits, noisy),
        "oracle": oracle_terms(onehot, noisy),
        "oracle_uniform": oracle_terms(onehot, smooth(onehot, amplitude, num_classes)),
    }


def fit_fraction(nf: float, nf_uniform: float, oracle: float, oracle_uniform: float) -> float:
    """(NF(f) - NF(uniform control)) / (oracle(f) - oracle(uniform)) (docs/methods.md §10)."""
    den = oracle - oracle_uniform
    return float((nf - nf_uniform) / den) if den != 0 else float("nan")


def minimum_over_epochs(records: list[dict], key: str = "noise_fitting", after_epoch: int = 0):
    """(min value, its epoch) of `key` over records with epoch >= after_epoch; (nan, -1) if none."""
    pts = [(r[key], r["epoch"]) for r in records if key in r and r["epoch"] >= after_epoch]
    if not pts:
        return float("nan"), -1
    i = int(np.argmin([v for v, _ in pts]))
    return float(pts[i][0]), int(pts[i][1])
