"""`cnn`: a small all-convolutional network for quick runs on small images.

conv3x3(width) -> BN -> ReLU, then two stride-2 conv3x3 stages doubling the width, global
average pooling and a zero-initialized linear head. Works at any HxWxC (8x8x1 digits, 32x32x3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers


class CNN(nnx.Module):
    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32, dtype=jnp.float32, rngs: nnx.Rngs):
        widths = (width, 2 * width, 4 * width)
        strides = (1, 2, 2)
        c_in = in_channels
        self.convs, self.norms = nnx.List(), nnx.List()
        for c_out, stride in zip(widths, strides):
            self.convs.append(layers.conv(c_in, c_out, 3, stride, dtype=dtype, rngs=rngs))
            self.norms.append(layers.batch_norm(c_out, dtype=dtype, rngs=rngs))
            c_in = c_out
        self.head = layers.zero_head(c_in, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, 4 * width]: the pooled input of the head."""
        for conv, norm in zip(self.convs, self.norms):
            x = jax.nn.relu(norm(conv(x), use_running_average=not train))
        return layers.global_avg_pool(x)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))


def build(config, input_shape, num_classes, *, dtype, rngs):
    return CNN(input_shape[-1], num_classes, dtype=dtype, rngs=rngs)
