"""`mlp`: flatten -> two ReLU hidden layers -> zero-initialized linear head. Any HxWxC input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers


class MLP(nnx.Module):
    def __init__(self, in_features: int, num_classes: int, *, width: int = 256, depth: int = 2,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        sizes = [in_features] + [width] * depth
        self.hidden = nnx.List(layers.dense(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = layers.zero_head(sizes[-1], num_classes, dtype=dtype, rngs=rngs)

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, width]: the last hidden layer."""
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return x

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))


def build(config, input_shape, num_classes, *, dtype, rngs):
    return MLP(math.prod(input_shape), num_classes, dtype=dtype, rngs=rngs)
