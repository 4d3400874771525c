"""BatchNorm over all axes but the last, with the reference's settings (docs/methods.md §3).

Same variables as `nnx.BatchNorm` (params `scale`, `bias`; batch stats `mean`, `var`), same
outputs and gradients (to float32 rounding), so checkpoints and variable trees look the same.
Reasons for having our own:

- Tracing cost. `nnx.BatchNorm` writes its running statistics with `variable[...] = value`,
  which in flax 0.12 / jax 0.10 probes `value.sharding` on a tracer; the error message that
  probe builds walks every equation traced so far, so tracing a train-mode forward pass is
  quadratic in depth (PyramidNet-272: ~90 s instead of ~3 s; fixed upstream by
  jax-ml/jax#40041). `Variable.set_value(value)` skips the probe.
- Compile cost. The training-mode backward pass is written out by hand (`batch_norm_train`,
  two reductions per layer), which roughly halves XLA's compile time of a deep network's
  train step compared with differentiating the forward formula.
- Mixed precision. Statistics and the normalization are computed in float32 inside the
  fused kernel whatever the activation dtype; only the output is cast back.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _reduce_axes(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(x.ndim - 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float):
    """Training-mode BatchNorm: -> (y [..., C] in x.dtype, batch mean [C], batch variance [C]).

    y = (x - mean) / sqrt(var + epsilon) * scale + bias with the biased (1/N) batch variance,
    statistics in float32 over all axes but the last.
    """
    return _train_fwd(x, scale, bias, epsilon)[0]


def _train_fwd(x, scale, bias, epsilon):
    x32 = x.astype(jnp.float32)
    axes = _reduce_axes(x)
    mean = x32.mean(axis=axes)
    var = jnp.square(x32 - mean).mean(axis=axes)  # two-pass: no cancellation
    inv = jax.lax.rsqrt(var + epsilon)
    multiplier = scale.astype(jnp.float32) * inv
    y = x32 * multiplier + (bias.astype(jnp.float32) - mean * multiplier)
    return (y.astype(x.dtype), mean, var), (x, mean, inv, scale)


def _train_bwd(epsilon, residuals, cotangents):
    x, mean, inv, scale = residuals
    dy, dmean, dvar = cotangents
    axes = _reduce_axes(x)
    n = math.prod(x.shape[a] for a in axes)
    centered = x.astype(jnp.float32) - mean
    x_hat = centered * inv
    dy = dy.astype(jnp.float32)
    dbias = dy.sum(axis=axes)
    dscale = (dy * x_hat).sum(axis=axes)
    # d/dx of the normalized output, plus the (usually zero) cotangents of the returned stats.
    dx = scale.astype(jnp.float32) * inv * (dy - (dbias + x_hat * dscale) / n)
    dx = dx + (dmean + 2.0 * dvar * centered) / n
    return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


batch_norm_train.defvjp(_train_fwd, _train_bwd)


class BatchNorm(nnx.Module):
    """[..., C] -> [..., C] in `dtype` (default: the input's dtype).

    Training (`use_running_average=False`): normalize with the batch statistics and update
    running <- momentum * running + (1 - momentum) * batch, with the biased (1/N) variance
    as in `nnx.BatchNorm` (TF's fused batch norm may average the N/(N-1)-corrected variance
    instead: a relative difference of 1/(N-1), N = batch * H * W, i.e. < 1e-4 at batch 256).
    Evaluation: normalize with the running statistics.
    """

    def __init__(self, num_features: int, *, momentum: float, epsilon: float, dtype=None,
                 param_dtype=jnp.float32):
        self.momentum, self.epsilon, self.dtype = momentum, epsilon, dtype
        # numpy + device_put: outside jit, jnp.ones / jnp.asarray compile once per new width.
        ones, zeros = np.ones(num_features, np.float32), np.zeros(num_features, np.float32)
        self.scale = nnx.Param(jax.device_put(ones.astype(param_dtype)))
        self.bias = nnx.Param(jax.device_put(zeros.astype(param_dtype)))
        self.mean = nnx.BatchStat(jax.device_put(zeros))
        self.var = nnx.BatchStat(jax.device_put(ones))

    def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
        x = x.astype(self.dtype or x.dtype)
        if not use_running_average:
            y, mean, var = batch_norm_train(x, self.scale[...], self.bias[...], self.epsilon)
            m = self.momentum
            self.mean.set_value(jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean))
            self.var.set_value(jax.lax.stop_gradient(m * self.var[...] + (1 - m) * var))
            return y
        multiplier = self.scale[...].astype(jnp.float32) * jax.lax.rsqrt(self.var[...] + self.epsilon)
        shift = self.bias[...].astype(jnp.float32) - self.mean[...] * multiplier
        return (x.astype(jnp.float32) * multiplier + shift).astype(x.dtype)


class ScalarScale(nnx.Module):
    """The reference's `use_batchnorm = 0` replacement for BatchNorm: x * s with one learnable
    scalar s (init 1), the same in training and evaluation (docs/methods.md §3.1)."""

    def __init__(self, *, dtype=None, param_dtype=jnp.float32):
        self.dtype = dtype
        self.scale = nnx.Param(jax.device_put(np.ones((), np.dtype(param_dtype))))

    def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
        x = x.astype(self.dtype or x.dtype)
        return x * self.scale[...].astype(x.dtype)
