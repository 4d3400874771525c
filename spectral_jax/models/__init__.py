"""Model registry and the one place where Flax NNX modules become pure functions.

Every model is an `nnx.Module` whose `__call__(x, *, train, key)` maps standardized NHWC
images to logits, as `head(features(x, train=..., key=...))`: `features` gives the penultimate
features (class diversity in feature space, docs/methods.md §2.5). `create_model` splits it once into a static graph and a variables pytree

    variables = {"params": {...}, "batch_stats": {...}}   (plain nested dicts of arrays)

and `PureModel.apply` / `PureModel.apply_fn` merge them back inside traced code. Training,
analysis, checkpoints, `jax.vmap` and sharding all see only the pure form.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.errors import unknown_name
from spectral_jax.models import cnn, layers, mlp, pyramidnet, resnet, shake_shake, wrn

# name -> build(config, input_shape, num_classes, *, dtype, rngs) -> nnx.Module
BUILDERS: dict[str, Callable[..., nnx.Module]] = {
    "cnn": cnn.build,
    "mlp": mlp.build,
    "resnet18": resnet.build,
    "wrn": wrn.build,  # depth and width from config.wrn
    # The paper's zoo (docs/methods.md §3), named as in the reference code.
    "wrn_32": wrn.build_preset(32),  # WRN-28-2
    "wrn_160": wrn.build_preset(160),  # WRN-28-10
    "shake_shake_32": shake_shake.build_preset(2),  # Shake-Shake-26 2x32d
    "shake_shake_96": shake_shake.build_preset(6),  # Shake-Shake-26 2x96d
    "shake_shake_112": shake_shake.build_preset(7),  # Shake-Shake-26 2x112d
    "pyramid_net": pyramidnet.build,  # PyramidNet-272, alpha 200, ShakeDrop
}

Variables = dict[str, Any]


def model_names() -> list[str]:
    return sorted(BUILDERS)


def check_model_name(name: str) -> None:
    if name not in BUILDERS:
        raise unknown_name("model", name, model_names())


@dataclasses.dataclass(frozen=True, eq=False)
class PureModel:
    """A model as pure functions of `variables` (see the module docstring)."""

    name: str
    graphdef: Any

    def apply(self, variables: Variables, images: jax.Array, *, train: bool = False,
              key: jax.Array | None = None) -> tuple[jax.Array, dict]:
        """-> (logits [B, K] float32, updated batch_stats). `key` drives stochastic layers."""
        module = nnx.merge(self.graphdef, variables["params"], variables["batch_stats"], copy=True)
        logits = module(images, train=train, key=key)
        return logits.astype(jnp.float32), nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))

    def apply_fn(self, variables: Variables, images: jax.Array) -> jax.Array:
        """Evaluation-mode logits: the `apply_fn(variables, images) -> logits` of the analysis."""
        return self.apply(variables, images, train=False)[0]

    def features_fn(self, variables: Variables, images: jax.Array) -> jax.Array:
        """Evaluation-mode penultimate features [B, F] float32: what the linear head sees."""
        module = nnx.merge(self.graphdef, variables["params"], variables["batch_stats"], copy=True)
        return module.features(images, train=False).astype(jnp.float32)


def create_model(config, input_shape: tuple[int, ...], num_classes: int,
                 key: jax.Array | None = None) -> tuple[PureModel, Variables]:
    """Builds `config.model`. With `key=None` the variables are abstract (shapes only): the
    target for restoring a checkpoint without spending time on initialization."""
    check_model_name(config.model)
    dtype = jnp.dtype(config.get("dtype", "float32"))
    build = BUILDERS[config.model]

    def make(k):
        with layers.normalization(config.get("use_batchnorm", True)):
            return build(config, tuple(input_shape), num_classes, dtype=dtype, rngs=nnx.Rngs(params=k))

    module = nnx.eval_shape(make, jax.random.key(0)) if key is None else make(key)
    graphdef, params, batch_stats, rest = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
    if jax.tree.leaves(rest):
        raise TypeError(f"Model {config.model!r} holds state other than Param/BatchStat: {rest}")
    variables = {"params": nnx.to_pure_dict(params), "batch_stats": nnx.to_pure_dict(batch_stats)}
    return PureModel(config.model, graphdef), variables


def count_params(variables: Variables) -> int:
    """Trainable parameters (BatchNorm scale/shift and biases included, running stats not)."""
    return int(sum(x.size for x in jax.tree.leaves(variables["params"])))
