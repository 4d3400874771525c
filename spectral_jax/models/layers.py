"""Layer constructors with the initializations of PAPER_SPEC §3, shared by every model.

- Convolutions: SAME padding, no bias, He-normal fan-in N(0, 2 / (k*k*C_in)), untruncated.
- BatchNorm: learnable scale and shift, momentum 0.9, epsilon 1e-5.
- The classifier head: weights and bias initialized to zero, so the first logits are 0 and
  the first-step loss is ln(num_classes).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

he_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(
        c_in, c_out, (kernel, kernel), strides=stride, padding="SAME", use_bias=False,
        kernel_init=he_normal, dtype=dtype, rngs=rngs,
    )


def batch_norm(channels: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)


def dense(c_in: int, c_out: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(c_in, c_out, kernel_init=he_normal, dtype=dtype, rngs=rngs)


def zero_head(c_in: int, num_classes: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(
        c_in, num_classes, kernel_init=nnx.initializers.zeros, bias_init=nnx.initializers.zeros,
        dtype=dtype, rngs=rngs,
    )
