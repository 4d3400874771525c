"""Per-model size and cost: trainable parameters and forward GFLOPs per image.

Both come without initializing anything: the variables are abstract (`create_model` with no
key), and the FLOPs are XLA's cost analysis of the compiled evaluation-mode forward pass on
one image (XLA counts a multiply-add as 2 FLOPs).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from spectral_jax import models


@dataclasses.dataclass(frozen=True)
class ModelRow:
    name: str
    params: int  # trainable parameters
    gflops: float  # forward GFLOPs per image (evaluation mode)


def forward_gflops(model: models.PureModel, variables: models.Variables, input_shape: Sequence[int]) -> float:
    """GFLOPs of one evaluation-mode forward pass on a single [1, *input_shape] image."""
    image = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    cost = jax.jit(model.apply_fn).lower(variables, image).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
        cost = cost[0]
    return float(cost["flops"]) / 1e9


def model_row(config, name: str, input_shape: Sequence[int], num_classes: int) -> ModelRow:
    """The row of registry model `name`, built from `config` with `config.model = name`."""
    models.check_model_name(name)
    config = copy.deepcopy(config)
    config.model = name
    model, variables = models.create_model(config, tuple(input_shape), num_classes)
    return ModelRow(name, models.count_params(variables), forward_gflops(model, variables, input_shape))


def model_rows(config, input_shape: Sequence[int], num_classes: int, names: Sequence[str] | None = None) -> list[ModelRow]:
    """One row per name (default: every registry model, sorted)."""
    names = models.model_names() if names is None else list(names)
    for name in names:  # fail on a bad name before spending time on the others
        models.check_model_name(name)
    return [model_row(config, name, input_shape, num_classes) for name in names]


def format_rows(rows: Sequence[ModelRow]) -> str:
    """A plain table: name, trainable parameters (integer), forward GFLOPs per image."""
    width = max([len("model")] + [len(r.name) for r in rows])
    lines = [f"{'model':<{width}}  {'params':>12}  {'GFLOPs/image':>12}"]
    lines += [f"{r.name:<{width}}  {r.params:>12d}  {r.gflops:>12.4f}" for r in rows]
    return "\n".join(lines)
