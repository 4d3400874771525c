"""Shake-Shake-26 2x(16k)d (docs/methods.md §3.2): `shake_shake_32` / `_96` / `_112` (k = 2 / 6 / 7).

    stem: conv3x3 -> 16 -> BN
    3 stages of 4 blocks, widths 16k, 32k, 64k, first-block strides 1, 2, 2
    block (C_in -> C_out, stride s):
        branch_i = ReLU -> conv3x3(C_out, s) -> BN -> ReLU -> conv3x3(C_out) -> BN      (i = 1, 2)
        skip     = x if C_in == C_out else BN(concat(conv1x1(x[::s, ::s]),
                                                     conv1x1(shift(x)[::s, ::s])))   (C_out/2 each)
        out      = skip + sum_i shake(branch_i, alpha_i, beta_i)
    head: ReLU -> global average pool -> FC (zero-initialized); no final BN

In training each block draws per-example forward weights alpha and independent backward weights
beta (`shake.shake_shake_coefficients`); in evaluation both branches are scaled by 1/2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers, shake

DEPTH = 26
BLOCKS_PER_STAGE = (DEPTH - 2) // 6  # 4


class Branch(nnx.Module):
    """ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN: [B, H, W, C_in] -> [B, H/s, W/s, C_out]."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.conv1 = layers.conv(c_in, c_out, 3, stride, dtype=dtype, rngs=rngs)
        self.bn1 = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)
        self.conv2 = layers.conv(c_out, c_out, 3, 1, dtype=dtype, rngs=rngs)
        self.bn2 = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = jax.nn.relu(self.bn1(self.conv1(jax.nn.relu(x)), use_running_average=not train))
        return self.bn2(self.conv2(x), use_running_average=not train)


class ShiftedProjection(nnx.Module):
    """The two-path projection skip: [B, H, W, C_in] -> [B, ceil(H/s), ceil(W/s), C_out].

    Path 2 sees the input shifted by one pixel (first row and column dropped, zeros appended),
    so after subsampling the two 1x1 convs look at complementary pixel grids.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        if c_out % 2:
            raise ValueError(f"Shake-Shake projection needs an even width, got {c_out}.")
        self.stride = stride
        self.path1 = layers.conv(c_in, c_out // 2, 1, 1, dtype=dtype, rngs=rngs)
        self.path2 = layers.conv(c_in, c_out // 2, 1, 1, dtype=dtype, rngs=rngs)
        self.bn = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        s = self.stride
        shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
        paths = [self.path1(x[:, ::s, ::s, :]), self.path2(shifted[:, ::s, ::s, :])]
        return self.bn(jnp.concatenate(paths, axis=-1), use_running_average=not train)


class ShakeShakeBlock(nnx.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.branches = nnx.List(Branch(c_in, c_out, stride, dtype=dtype, rngs=rngs) for _ in range(2))
        projects = c_in != c_out or stride != 1
        self.skip = ShiftedProjection(c_in, c_out, stride, dtype=dtype, rngs=rngs) if projects else None

    def __call__(self, x: jax.Array, *, train: bool, coefficients: tuple[jax.Array, jax.Array] | None) -> jax.Array:
        """`coefficients`: (forward, backward) weights [2, B, 1, 1, 1] in training, else None."""
        branches = [branch(x, train=train) for branch in self.branches]
        if train:
            forward, backward = coefficients
            mixed = sum(shake.shake(b, f, g) for b, f, g in zip(branches, forward, backward))
        else:
            mixed = sum(b * shake.SHAKE_SHAKE_EXPECTATION for b in branches)
        skip = x if self.skip is None else self.skip(x, train=train)
        return skip + mixed


class ShakeShake(nnx.Module):
    """[B, H, W, C] standardized images -> [B, num_classes] logits, any H, W, C."""

    def __init__(self, in_channels: int, num_classes: int, *, widen_factor: int, dtype, rngs: nnx.Rngs):
        self.dtype = dtype
        self.stem = layers.conv(in_channels, 16, 3, 1, dtype=dtype, rngs=rngs)
        self.stem_bn = layers.batch_norm(16, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List()
        c_in = 16
        for c_out, stride in zip((16 * widen_factor, 32 * widen_factor, 64 * widen_factor), (1, 2, 2)):
            for i in range(BLOCKS_PER_STAGE):
                self.blocks.append(ShakeShakeBlock(c_in, c_out, stride if i == 0 else 1, dtype=dtype, rngs=rngs))
                c_in = c_out
        self.head = layers.zero_head(c_in, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, 64 * widen_factor]: the pooled input of the head."""
        shake.check_key(key, train, "Shake-Shake")
        coefficients = [None] * len(self.blocks)
        if train:
            coefficients = list(zip(*shake.shake_shake_coefficients(key, len(self.blocks), x.shape[0])))
        x = self.stem_bn(self.stem(x.astype(self.dtype)), use_running_average=not train)
        for block, block_coefficients in zip(self.blocks, coefficients):
            x = block(x, train=train, coefficients=block_coefficients)
        return layers.global_avg_pool(jax.nn.relu(x))


def build_preset(widen_factor: int):
    """Shake-Shake-26 2x(16 * widen_factor)d."""

    def build(config, input_shape, num_classes, *, dtype, rngs):
        return ShakeShake(input_shape[-1], num_classes, widen_factor=widen_factor, dtype=dtype, rngs=rngs)

    return build
