"""Layer constructors with the initializations of docs/methods.md §3, shared by every model.

- Convolutions: SAME padding, no bias, He-normal fan-in N(0, 2 / (k*k*C_in)), untruncated.
- BatchNorm: learnable scale and shift, momentum 0.9, epsilon 1e-5 (`norm.BatchNorm`).
- The classifier head: weights and bias initialized to zero, so the first logits are 0 and
  the first-step loss is ln(num_classes).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spectral_jax.models.norm import BatchNorm, ScalarScale


@functools.partial(jax.jit, static_argnums=1)
def _standard_normal(key: jax.Array, size: int) -> jax.Array:
    return jax.random.normal(key, (size,), jnp.float32)


def he_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """N(0, 2 / fan_in), untruncated, fan_in = prod(shape[:-1]) (k*k*C_in for a conv kernel).

    Why not `nnx.initializers.variance_scaling`: outside jit every new shape compiles a new
    sampler (~1 s each on CPU), and PyramidNet-272 has ~270 kernel shapes. Here the normals
    come from a sampler compiled once per power-of-two size; the first prod(shape) values
    are scaled and reshaped, on the host when the array is concrete (no compilation at all)
    and with the same float32 operations when traced, so eager and traced initializations
    give identical values.
    """
    n = math.prod(shape)
    std = np.float32(math.sqrt(2.0 / math.prod(shape[:-1])))
    z = _standard_normal(key, max(1024, 1 << (n - 1).bit_length()))
    if isinstance(z, jax.core.Tracer):
        return (z[:n] * std).reshape(shape).astype(dtype)
    return jax.device_put((np.asarray(z)[:n] * std).reshape(shape).astype(dtype))  # no compilation


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(
        c_in, c_out, (kernel, kernel), strides=stride, padding="SAME", use_bias=False,
        kernel_init=he_normal, dtype=dtype, rngs=rngs,
    )


_USE_BATCHNORM = contextvars.ContextVar("use_batchnorm", default=True)


@contextlib.contextmanager
def normalization(use_batchnorm: bool):
    """While building a model: `batch_norm` layers are BatchNorm (True) or a learnable scalar
    multiplier (False, the reference's `use_batchnorm = 0`). The built graph keeps the choice."""
    token = _USE_BATCHNORM.set(bool(use_batchnorm))
    try:
        yield
    finally:
        _USE_BATCHNORM.reset(token)


def batch_norm(channels: int, *, dtype=jnp.float32, rngs: nnx.Rngs | None = None) -> BatchNorm | ScalarScale:
    """`rngs` is accepted for a uniform signature; BatchNorm's initialization is not random."""
    if not _USE_BATCHNORM.get():
        return ScalarScale(dtype=dtype)
    return BatchNorm(channels, momentum=0.9, epsilon=1e-5, dtype=dtype)


def dense(c_in: int, c_out: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(c_in, c_out, kernel_init=he_normal, dtype=dtype, rngs=rngs)


def zero_head(c_in: int, num_classes: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(
        c_in, num_classes, kernel_init=nnx.initializers.zeros, bias_init=nnx.initializers.zeros,
        dtype=dtype, rngs=rngs,
    )


def global_avg_pool(x):
    """[B, H, W, C] -> [B, C]: the mean over all spatial positions (before every model's head)."""
    return x.mean(axis=(1, 2))
