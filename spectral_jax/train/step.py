"""Pure training and evaluation steps, jitted once per run.

The train state is a plain dict pytree `{"params", "batch_stats", "opt_state", "step"}`.
A step gathers its batch from the device-resident uint8 split by index, standardizes and
augments it on the device, and accumulates epoch metrics on the device (read once per epoch).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from spectral_jax.data import standardize
from spectral_jax.data.augment import make_augment_fn
from spectral_jax.models import PureModel

TrainState = dict[str, Any]
AUGMENT_KEY = 0x61756700  # fold_in tag of the augmentation key, apart from the model's use of step_key


class DeviceSplit(NamedTuple):
    """A split as it lives on the device: uint8 images, int32 labels, standardization."""

    images: jax.Array  # uint8 [N, H, W, C]
    labels: jax.Array  # int32 [N]
    mean: jax.Array  # float32 [C]
    std: jax.Array  # float32 [C]

    @classmethod
    def put(cls, split, mean, std) -> "DeviceSplit":
        return cls(*jax.device_put((split.images, split.labels.astype("int32"),
                                    mean.astype("float32"), std.astype("float32"))))


def l2_penalty(params) -> jax.Array:
    """0.5 * sum of squares over every trainable parameter (coupled L2, PAPER_SPEC §4)."""
    return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in jax.tree.leaves(params))


def init_state(variables, optimizer: optax.GradientTransformation) -> TrainState:
    return {
        "params": variables["params"],
        "batch_stats": variables["batch_stats"],
        "opt_state": optimizer.init(variables["params"]),
        "step": jnp.zeros((), jnp.int32),
    }


def zero_metrics() -> dict[str, jax.Array]:
    return {"loss_sum": jnp.zeros(()), "correct": jnp.zeros(()), "count": jnp.zeros(())}


def make_train_step(model: PureModel, optimizer: optax.GradientTransformation, config, num_classes: int):
    """-> train_step(state, metrics, data: DeviceSplit, perm [N], index_in_epoch, key) -> (state, metrics).

    Batch `index_in_epoch` is perm[i*B:(i+1)*B]; `key` is folded with the global step so
    stochastic layers are reproducible from (seed, step).
    """
    batch_size, weight_decay = config.batch_size, config.weight_decay

    def train_step(state, metrics, data: DeviceSplit, perm, index_in_epoch, key):
        idx = jax.lax.dynamic_slice_in_dim(perm, index_in_epoch * batch_size, batch_size)
        images = standardize(data.images[idx], data.mean, data.std)
        labels = data.labels[idx]
        targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        step_key = jax.random.fold_in(key, state["step"])
        # On-device augmentation (identity when config.augment is all off); its own key stream.
        augment = make_augment_fn(config, data.images.shape[1:], num_classes, data.mean, data.std)
        images, targets = augment(jax.random.fold_in(step_key, AUGMENT_KEY), images, targets)

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            logits, batch_stats = model.apply(variables, images, train=True, key=step_key)
            ce = optax.softmax_cross_entropy(logits, targets).mean()
            return ce + weight_decay * l2_penalty(params), (ce, logits, batch_stats)

        grads, (ce, logits, batch_stats) = jax.grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        new_metrics = {
            "loss_sum": metrics["loss_sum"] + ce * batch_size,
            "correct": metrics["correct"] + jnp.sum(jnp.argmax(logits, -1) == labels),
            "count": metrics["count"] + batch_size,
        }
        return new_state, new_metrics

    return jax.jit(train_step, donate_argnums=(0, 1))


def make_eval_fn(model: PureModel, batch_size: int):
    """-> evaluate(variables, data: DeviceSplit) -> {"loss", "acc"} over the whole split.

    Every example counts (the last batch is padded and masked), in evaluation mode.
    """

    def evaluate(variables, data: DeviceSplit):
        n = data.labels.shape[0]
        num_batches = -(-n // batch_size)
        idx = jnp.arange(num_batches * batch_size)
        mask = idx < n
        idx = jnp.where(mask, idx, 0).reshape(num_batches, batch_size)
        mask = mask.reshape(num_batches, batch_size)

        def one_batch(args):
            batch_idx, batch_mask = args
            images = standardize(data.images[batch_idx], data.mean, data.std)
            labels = data.labels[batch_idx]
            logits = model.apply_fn(variables, images)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            correct = jnp.argmax(logits, -1) == labels
            return jnp.sum(ce * batch_mask), jnp.sum(correct * batch_mask)

        loss_sums, correct = jax.lax.map(one_batch, (idx, mask))
        return {"loss": loss_sums.sum() / n, "acc": correct.sum() / n}

    return jax.jit(evaluate)
