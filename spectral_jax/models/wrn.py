"""Wide-ResNet as in the reference code (docs/methods.md §3.1): `wrn_32`, `wrn_160` and generic `wrn`.

Pre-activation blocks with **3x3** projection shortcuts (standard WRN uses 1x1), stage widths
[16, k, 2k, 4k] at strides 1, 2, 2, and (depth - 4) / 6 blocks per stage:

    stem conv3x3 -> 16
    block (C_in -> C_out, stride s):  h = ReLU(BN(x))
        shortcut = conv3x3(h, C_out, s) if C_in != C_out else x
        branch   = conv3x3(h, C_out, s) -> BN -> ReLU -> conv3x3(C_out, 1)
        out      = shortcut + branch
    head: BN -> ReLU -> global average pool -> FC (zero-initialized)

wrn_32 (k = 32) is WRN-28-2 and wrn_160 (k = 160) is WRN-28-10; generic `wrn` reads
`config.wrn.depth` and `config.wrn.widen_factor` (k = 16 * widen_factor).
"""

from __future__ import annotations

import jax
from flax import nnx

from spectral_jax.models import layers


class WideBlock(nnx.Module):
    """One pre-activation block: [B, H, W, C_in] -> [B, ceil(H/s), ceil(W/s), C_out]."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.bn_in = layers.batch_norm(c_in, dtype=dtype, rngs=rngs)
        self.conv1 = layers.conv(c_in, c_out, 3, stride, dtype=dtype, rngs=rngs)
        self.bn_mid = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)
        self.conv2 = layers.conv(c_out, c_out, 3, 1, dtype=dtype, rngs=rngs)
        # The reference projects only when the width changes; a stride without a width change
        # never occurs in a WRN, but projecting then too keeps the shapes right regardless.
        project = c_in != c_out or stride != 1
        self.shortcut = layers.conv(c_in, c_out, 3, stride, dtype=dtype, rngs=rngs) if project else None

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = jax.nn.relu(self.bn_in(x, use_running_average=not train))
        shortcut = x if self.shortcut is None else self.shortcut(h)  # identity uses x, not h
        branch = jax.nn.relu(self.bn_mid(self.conv1(h), use_running_average=not train))
        return shortcut + self.conv2(branch)


class WideResNet(nnx.Module):
    """[B, H, W, C] standardized images -> [B, num_classes] logits, any H, W, C."""

    def __init__(self, in_channels: int, num_classes: int, *, depth: int, k: int, dtype, rngs: nnx.Rngs):
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}.")
        blocks_per_stage = (depth - 4) // 6
        self.dtype = dtype
        self.stem = layers.conv(in_channels, 16, 3, 1, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List()
        c_in = 16
        for c_out, stride in zip((k, 2 * k, 4 * k), (1, 2, 2)):
            for i in range(blocks_per_stage):
                self.blocks.append(WideBlock(c_in, c_out, stride if i == 0 else 1, dtype=dtype, rngs=rngs))
                c_in = c_out
        self.bn_out = layers.batch_norm(c_in, dtype=dtype, rngs=rngs)
        self.head = layers.zero_head(c_in, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, 4k]: the pooled input of the head."""
        x = self.stem(x.astype(self.dtype))
        for block in self.blocks:
            x = block(x, train=train)
        x = jax.nn.relu(self.bn_out(x, use_running_average=not train))
        return layers.global_avg_pool(x)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))


def build_preset(k: int):
    """A fixed depth-28 WRN with base width k (32 -> WRN-28-2, 160 -> WRN-28-10)."""

    def build(config, input_shape, num_classes, *, dtype, rngs):
        return WideResNet(input_shape[-1], num_classes, depth=28, k=k, dtype=dtype, rngs=rngs)

    return build


def build(config, input_shape, num_classes, *, dtype, rngs):
    """Generic WRN-depth-widen_factor from `config.wrn`."""
    return WideResNet(input_shape[-1], num_classes, depth=config.wrn.depth, k=16 * config.wrn.widen_factor,
                      dtype=dtype, rngs=rngs)
