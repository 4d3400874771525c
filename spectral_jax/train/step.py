"""Pure, jitted training and evaluation steps, data-parallel over the mesh.

The train state is a plain dict pytree `{"params", "batch_stats", "opt_state", "step"}`,
replicated on every device. A step reads everything it needs from the device: its batch
indices from the epoch permutation at position `step % steps_per_epoch`, the uint8 images
and labels by gather, its randomness from `fold_in(key, step)`. So the epoch loop hands the
step nothing from the host (it runs under `jax.transfer_guard("disallow")`), and epoch metrics
accumulate on the device, read once per epoch.

Every in-memory step also comes in an ensemble form (`members=K`): K states stacked on a
leading axis, each with its own hyperparameters (`aux["hyper"]` [K]), data order and randomness,
trained by one program under `jax.vmap` over the same device-resident data.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from spectral_jax import parallel
from spectral_jax.data import standardize
from spectral_jax.data.noise import noise_fitting_terms
from spectral_jax.models import PureModel
from spectral_jax.train.optimizer import make_optimizer

TrainState = dict[str, Any]
# batch_fn(key, images [B,H,W,C] standardized, labels [B], aux) -> (images, targets [B,K], eps [B]);
# `aux` carries arrays the step needs as jit arguments: `aux["hyper"]` (see `hyperparameters`)
# and, when distilling, `aux["teacher"]` (the teacher's variables).
BatchFn = Callable[[jax.Array, jax.Array, jax.Array, Any], tuple[jax.Array, jax.Array, jax.Array]]

# Scalar hyperparameters that reach the step as arrays (aux["hyper"]), not as constants: members
# of an ensemble trained in one program (jax.vmap) differ in them, and a single run uses the
# same code path.
HYPER_KEYS = ("lr", "weight_decay", "label_smoothing")


def hyperparameters(config) -> dict[str, np.float32]:
    """`aux["hyper"]` of a run: its `HYPER_KEYS` as float32 scalars."""
    return {k: np.float32(config[k]) for k in HYPER_KEYS}


class DeviceSplit(NamedTuple):
    """A split as it lives on the devices (replicated): uint8 images, int32 labels, standardization."""

    images: jax.Array  # uint8 [N, H, W, C]
    labels: jax.Array  # int32 [N]
    mean: jax.Array  # float32 [C]
    std: jax.Array  # float32 [C]

    @classmethod
    def put(cls, split, mean, std, mesh: Mesh | None = None) -> "DeviceSplit":
        """Copies a host `Split` to every device of `mesh` (replicated)."""
        host = (split.images, split.labels.astype("int32"), mean.astype("float32"), std.astype("float32"))
        return cls(*(parallel.put_replicated(host, mesh) if mesh is not None else jax.device_put(host)))


def l2_penalty(params) -> jax.Array:
    """0.5 * sum of squares over every trainable parameter (coupled L2, docs/methods.md §4)."""
    return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in jax.tree.leaves(params))


def init_state(variables, optimizer: optax.GradientTransformation) -> TrainState:
    return {
        "params": variables["params"],
        "batch_stats": variables["batch_stats"],
        "opt_state": optimizer.init(variables["params"]),
        "step": jnp.zeros((), jnp.int32),
    }


def zero_metrics() -> dict[str, jax.Array]:
    """Epoch accumulators; `nonfinite_step` is the first step whose loss was NaN/Inf (-1: none).
    The l2 norms (as big_vision logs them): sums over steps of the gradient's and the update's
    global norm, and the parameters' global norm after the latest step."""
    sums = ("loss_sum", "correct", "count", "steps", "max_eps", "grad_norm_sum", "update_norm_sum", "param_norm")
    return {**{k: jnp.zeros(()) for k in sums}, "nonfinite_step": jnp.full((), -1, jnp.int32)}


def one_hot_batch_fn(num_classes: int) -> BatchFn:
    """The plain pipeline: images unchanged, one-hot targets, no label noise."""
    def batch_fn(key, images, labels, aux):
        return images, jax.nn.one_hot(labels, num_classes, dtype=jnp.float32), jnp.zeros(labels.shape[0])
    return batch_fn


def make_update(model: PureModel, config, num_classes: int, total_steps: int, batch_fn: BatchFn | None = None):
    """-> update(state, metrics, images [B,H,W,C] standardized, labels [B], key, aux) -> (state, metrics):
    the pipeline (augmentation, targets), loss, gradient and optimizer update of one step. The
    learning rate and weight decay come from `aux["hyper"]`."""
    batch_size = config.batch_size
    batch_fn = batch_fn or one_hot_batch_fn(num_classes)

    def update(state, metrics, images, labels, key, aux):
        hyper = aux["hyper"]
        weight_decay = hyper["weight_decay"]
        optimizer, _ = make_optimizer(config, total_steps, lr=hyper["lr"])  # the same transform, traced lr
        step = state["step"]
        step_key = jax.random.fold_in(key, step)
        images, targets, eps = batch_fn(jax.random.fold_in(step_key, 1), images, labels, aux)

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            logits, batch_stats = model.apply(variables, images, train=True, key=jax.random.fold_in(step_key, 0))
            ce = optax.softmax_cross_entropy(logits, targets).mean()
            return ce + weight_decay * l2_penalty(params), (ce, logits, batch_stats)

        grads, (ce, logits, batch_stats) = jax.grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {
            "params": params,
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "step": step + 1,
        }
        first_bad = jnp.where((metrics["nonfinite_step"] < 0) & ~jnp.isfinite(ce), step + 1,
                              metrics["nonfinite_step"])
        new_metrics = {
            "loss_sum": metrics["loss_sum"] + ce * batch_size,
            "correct": metrics["correct"] + jnp.sum(jnp.argmax(logits, -1) == labels),
            "count": metrics["count"] + batch_size,
            "steps": metrics["steps"] + 1,
            "max_eps": jnp.maximum(metrics["max_eps"], jnp.max(eps)),
            "grad_norm_sum": metrics["grad_norm_sum"] + optax.tree.norm(grads),
            "update_norm_sum": metrics["update_norm_sum"] + optax.tree.norm(updates),
            "param_norm": optax.tree.norm(params),
            "nonfinite_step": first_bad,
        }
        return new_state, new_metrics

    return update


def make_train_step(model: PureModel, config, num_classes: int, total_steps: int, steps_per_epoch: int,
                    mesh: Mesh | None = None, batch_fn: BatchFn | None = None, members: int = 0):
    """In-memory data: -> train_step(state, metrics, data: DeviceSplit, perm [N], key, aux) -> (state, metrics).

    The batch is perm[i*B:(i+1)*B] with i = step % steps_per_epoch, gathered on the device. With
    `members=K`, state, metrics, perm [K, N], key [K] and aux["hyper"] carry a leading member axis."""
    update = make_update(model, config, num_classes, total_steps, batch_fn)
    constrain, batch_size = _batch_constraint(mesh), config.batch_size

    def train_step(state, metrics, data: DeviceSplit, perm, key, aux):
        idx = jax.lax.dynamic_slice_in_dim(perm, (state["step"] % steps_per_epoch) * batch_size, batch_size)
        images = constrain(standardize(data.images[idx], data.mean, data.std))
        return update(state, metrics, images, constrain(data.labels[idx]), key, aux)

    if not members:
        return _jit_step(train_step, mesh)

    def ensemble_step(state, metrics, data: DeviceSplit, perm, key, aux):
        def member(state, metrics, perm, key, hyper):
            return train_step(state, metrics, data, perm, key, {**aux, "hyper": hyper})

        return jax.vmap(member)(state, metrics, perm, key, aux["hyper"])

    return _jit_step(ensemble_step, mesh)


def make_stream_train_step(model: PureModel, config, num_classes: int, total_steps: int, mesh: Mesh | None = None,
                           batch_fn: BatchFn | None = None):
    """Streamed data: -> train_step(state, metrics, images uint8 [B,H,W,C], labels [B], mean, std, key, aux)."""
    update = make_update(model, config, num_classes, total_steps, batch_fn)
    constrain = _batch_constraint(mesh)

    def train_step(state, metrics, images_u8, labels, mean, std, key, aux):
        images = constrain(standardize(images_u8, mean, std))
        return update(state, metrics, images, constrain(labels), key, aux)

    return _jit_step(train_step, mesh)


def _jit_step(fn, mesh):
    out = _replicated(mesh)
    return jax.jit(fn, donate_argnums=(0, 1), out_shardings=out)


def make_epoch_permutation(steps_per_epoch: int, num_examples: int, members: int = 0):
    """-> perm(data_key, step) [N]: the order of the epoch containing `step`, from (seed, epoch), on
    device (with `members`, keys and steps [K] -> [K, N])."""
    def perm(data_key, step):
        return jax.random.permutation(jax.random.fold_in(data_key, step // steps_per_epoch), num_examples)
    return jax.jit(jax.vmap(perm) if members else perm)


def make_eval_terms(model: PureModel, num_classes: int, mesh: Mesh | None = None, noise=None):
    """-> terms(variables, images [B,...] standardized, labels [B], mask [B]) -> dict of sums over the
    batch's valid rows. Always `count`, `loss` (clean CE) and `correct`. With an active `noise`
    (data.noise.LabelNoise, normalized over the valid rows of this batch): `noisy`, `oracle`,
    `oracle_uniform`, and with `noise.class_index >= 0` the same five restricted to that class,
    prefixed `class_`."""
    constrain = _batch_constraint(mesh)
    with_noise = noise is not None and noise.active
    with_class = with_noise and noise.class_index >= 0

    def terms(variables, images, labels, mask):
        images, labels = constrain(images), constrain(labels)
        logits = model.apply_fn(variables, images)
        onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        out = {"loss": optax.softmax_cross_entropy(logits, onehot),
               "correct": (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
               "count": jnp.ones(labels.shape, jnp.float32)}
        if with_noise:
            noisy, _ = noise(images, onehot, mask)
            t = noise_fitting_terms(logits, onehot, noisy, noise.amplitude, num_classes)
            out.update(noisy=t["noisy"], oracle=t["oracle"], oracle_uniform=t["oracle_uniform"])
        if with_class:
            in_class = labels == noise.class_index
            for k in ("loss", "noisy", "oracle", "oracle_uniform", "count"):
                out[f"class_{k}"] = jnp.where(in_class, out[k], 0.0)
        return {k: jnp.sum(jnp.where(mask, v, 0.0)) for k, v in out.items()}

    return terms


def make_eval_fn(model: PureModel, batch_size: int, num_classes: int, mesh: Mesh | None = None, noise=None,
                 members: int = 0):
    """In-memory data: -> evaluate(variables, data: DeviceSplit) -> the sums of `make_eval_terms`
    over the whole split, in evaluation mode, in fixed-order batches (the last padded and masked).
    With `members=K`, variables and the sums carry a leading member axis."""
    terms = make_eval_terms(model, num_classes, mesh, noise)

    def evaluate(variables, data: DeviceSplit):
        n = data.labels.shape[0]
        num_batches = -(-n // batch_size)
        pos = jnp.arange(num_batches * batch_size)
        valid = (pos < n).reshape(num_batches, batch_size)
        idx = jnp.where(pos < n, pos, 0).reshape(num_batches, batch_size)

        def one_batch(args):
            batch_idx, mask = args
            images = standardize(data.images[batch_idx], data.mean, data.std)
            return terms(variables, images, data.labels[batch_idx], mask)

        return jax.tree.map(jnp.sum, jax.lax.map(one_batch, (idx, valid)))

    fn = jax.vmap(evaluate, in_axes=(0, None)) if members else evaluate
    return jax.jit(fn, out_shardings=_replicated(mesh))


def make_stream_eval_fn(model: PureModel, num_classes: int, mesh: Mesh | None = None, noise=None):
    """Streamed data: -> accumulate(sums, variables, images uint8, labels, mask, mean, std) -> sums;
    start from `sums=None`. Sums stay on the device."""
    terms = make_eval_terms(model, num_classes, mesh, noise)
    out = _replicated(mesh)

    @functools.partial(jax.jit, out_shardings=out)
    def first(variables, images_u8, labels, mask, mean, std):
        return terms(variables, standardize(images_u8, mean, std), labels, mask)

    @functools.partial(jax.jit, donate_argnums=(0,), out_shardings=out)
    def add(sums, variables, images_u8, labels, mask, mean, std):
        new = terms(variables, standardize(images_u8, mean, std), labels, mask)
        return jax.tree.map(jnp.add, sums, new)

    def accumulate(sums, *args):
        return first(*args) if sums is None else add(sums, *args)

    return accumulate


def _replicated(mesh: Mesh | None):
    """Output sharding of a step: replicated over the mesh (None: wherever jit puts it)."""
    return parallel.replicated(mesh) if mesh is not None else None


def _batch_constraint(mesh: Mesh | None):
    if mesh is None or mesh.size == 1:
        return lambda x: x
    sharding = parallel.batch_sharded(mesh)
    return lambda x: jax.lax.with_sharding_constraint(x, sharding)
