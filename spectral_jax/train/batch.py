"""The training batch pipeline (docs/methods.md §5 order), one pure function per step:

    images, one-hot labels -> augmentation (incl. mixup) -> label smoothing
      -> frequency-modulated label noise (on the augmented images) -> distillation targets

Each stage is off unless configured; all of it runs inside the jitted train step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from spectral_jax.data import noise as noise_lib
from spectral_jax.train.step import BatchFn


def make_batch_fn(config, num_classes: int, *, augment=None, noise: noise_lib.LabelNoise | None = None,
                  teacher=None) -> BatchFn:
    """`augment(key, images, targets) -> (images, targets)`; `teacher` a PureModel whose variables
    arrive as `aux["teacher"]` (evaluation mode, temperature 1, docs/methods.md §6). The label
    smoothing comes from `aux["hyper"]["label_smoothing"]` (0 leaves the targets exactly as they are)."""
    alpha = float(config.distillation_alpha)

    def batch_fn(key, images, labels, aux):
        targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        if augment is not None:
            images, targets = augment(key, images, targets)
        targets = noise_lib.smooth(targets, aux["hyper"]["label_smoothing"], num_classes)
        eps = jnp.zeros(labels.shape[0], jnp.float32)
        if noise is not None and noise.active:
            targets, eps = noise(images, targets)
        if teacher is not None:
            soft = jax.nn.softmax(teacher.apply_fn(aux["teacher"], images), axis=-1)
            targets = alpha * targets + (1.0 - alpha) * jax.lax.stop_gradient(soft)
        return images, targets, eps

    return batch_fn
