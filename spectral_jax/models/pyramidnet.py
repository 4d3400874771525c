"""PyramidNet-272, alpha = 200, bottleneck blocks with ShakeDrop (docs/methods.md §3.3): `pyramid_net`.

    stem: conv3x3 -> 16 -> BN
    90 bottleneck blocks (30 per stage, stride 2 in the first block of stages 2 and 3); the
    bottleneck width w grows linearly from 16 by alpha / 90 per block, rounded half up
    (18, 20, 23, ..., 216), and each block outputs 4w channels (72 ... 864):
        branch   = BN -> conv1x1(w) -> BN -> ReLU -> conv3x3(w, s) -> BN -> ReLU -> conv1x1(4w) -> BN
        shortcut = avg_pool 2x2 / 2 (SAME) if s == 2, then zero-pad channels up to 4w
        out      = shortcut + shakedrop(branch)
    head: BN -> ReLU -> global average pool -> FC (zero-initialized)

ShakeDrop in block l = 1..90 has survival probability p_l = 1 - 0.5 * l / 90: per example a
gate b ~ Bernoulli(p_l) with forward factor b + alpha(1 - b), alpha ~ U(-1, 1), and backward
factor b + beta(1 - b), beta ~ U(0, 1). In evaluation the branch is scaled by p_l.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers, shake

DEPTH = 272
ALPHA = 200
BLOCKS_PER_STAGE = (DEPTH - 2) // 9  # 30 bottlenecks of 3 convs each per stage
FINAL_SURVIVAL = 0.5  # p_L of the last block


def bottleneck_widths(num_blocks: int = 3 * BLOCKS_PER_STAGE, alpha: float = ALPHA, start: int = 16) -> list[int]:
    """Width w_l of block l = 1..num_blocks: start + l * alpha / num_blocks, rounded half up.

    The running sum is accumulated in floating point, as in the reference.
    """
    widths, width = [], float(start)
    for _ in range(num_blocks):
        width += alpha / num_blocks
        widths.append(int(math.floor(width + 0.5)))
    return widths


def survival_probabilities(num_blocks: int) -> list[float]:
    """p_l = 1 - (1 - p_L) * l / num_blocks for l = 1..num_blocks (linear decay rule)."""
    return [1.0 - (1.0 - FINAL_SURVIVAL) * l / num_blocks for l in range(1, num_blocks + 1)]


class Bottleneck(nnx.Module):
    """[B, H, W, C_in] -> [B, ceil(H/s), ceil(W/s), 4w], with ShakeDrop of survival `survival`."""

    def __init__(self, c_in: int, width: int, stride: int, survival: float, *, dtype, rngs: nnx.Rngs):
        c_out = 4 * width
        if c_out < c_in:
            raise ValueError(f"PyramidNet widths must not shrink ({c_in} -> {c_out}).")
        self.stride, self.survival, self.pad = stride, survival, c_out - c_in
        self.bn0 = layers.batch_norm(c_in, dtype=dtype, rngs=rngs)
        self.conv1 = layers.conv(c_in, width, 1, 1, dtype=dtype, rngs=rngs)
        self.bn1 = layers.batch_norm(width, dtype=dtype, rngs=rngs)
        self.conv2 = layers.conv(width, width, 3, stride, dtype=dtype, rngs=rngs)
        self.bn2 = layers.batch_norm(width, dtype=dtype, rngs=rngs)
        self.conv3 = layers.conv(width, c_out, 1, 1, dtype=dtype, rngs=rngs)
        self.bn3 = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)

    def branch(self, x: jax.Array, *, train: bool) -> jax.Array:
        ura = not train
        h = self.conv1(self.bn0(x, use_running_average=ura))
        h = self.conv2(jax.nn.relu(self.bn1(h, use_running_average=ura)))
        h = self.conv3(jax.nn.relu(self.bn2(h, use_running_average=ura)))
        return self.bn3(h, use_running_average=ura)

    def shortcut(self, x: jax.Array) -> jax.Array:
        if self.stride != 1:
            # SAME padding with padded cells left out of the mean (TF semantics), so odd sizes
            # give ceil(H/2) like the strided conv of the branch.
            x = nnx.avg_pool(x, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False)
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.pad)))

    def __call__(self, x: jax.Array, *, train: bool, coefficients: tuple[jax.Array, jax.Array] | None) -> jax.Array:
        """`coefficients`: ShakeDrop (forward, backward) factors [B, 1, 1, 1] in training, else None."""
        h = self.branch(x, train=train)
        if train:
            h = shake.shake(h, *coefficients)
        else:
            h = h * shake.shakedrop_expectation(self.survival)
        return self.shortcut(x) + h


class PyramidNet(nnx.Module):
    """[B, H, W, C] standardized images -> [B, num_classes] logits, any H, W, C."""

    def __init__(self, in_channels: int, num_classes: int, *, dtype, rngs: nnx.Rngs):
        num_blocks = 3 * BLOCKS_PER_STAGE
        self.dtype = dtype
        self.stem = layers.conv(in_channels, 16, 3, 1, dtype=dtype, rngs=rngs)
        self.stem_bn = layers.batch_norm(16, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List()
        c_in = 16
        for l, (width, survival) in enumerate(zip(bottleneck_widths(), survival_probabilities(num_blocks))):
            stride = 2 if l in (BLOCKS_PER_STAGE, 2 * BLOCKS_PER_STAGE) else 1
            self.blocks.append(Bottleneck(c_in, width, stride, survival, dtype=dtype, rngs=rngs))
            c_in = 4 * width
        self.bn_out = layers.batch_norm(c_in, dtype=dtype, rngs=rngs)
        self.head = layers.zero_head(c_in, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, 864]: the pooled input of the head."""
        shake.check_key(key, train, "PyramidNet (ShakeDrop)")
        coefficients = [None] * len(self.blocks)
        if train:
            survival = [block.survival for block in self.blocks]
            coefficients = list(zip(*shake.shakedrop_coefficients(key, survival, x.shape[0])))
        x = self.stem_bn(self.stem(x.astype(self.dtype)), use_running_average=not train)
        for block, block_coefficients in zip(self.blocks, coefficients):
            x = block(x, train=train, coefficients=block_coefficients)
        x = jax.nn.relu(self.bn_out(x, use_running_average=not train))
        return layers.global_avg_pool(x)


def build(config, input_shape, num_classes, *, dtype, rngs):
    return PyramidNet(input_shape[-1], num_classes, dtype=dtype, rngs=rngs)
