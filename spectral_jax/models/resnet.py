"""`resnet18`: ResNet-18, CIFAR variant (3x3 stride-1 stem, no max-pool).

    stem: conv3x3 -> 64 -> BN -> ReLU
    4 stages of 2 basic blocks, widths 64, 128, 256, 512, first-block strides 1, 2, 2, 2
    basic block: ReLU(conv3x3(s) -> BN -> ReLU -> conv3x3 -> BN  +  shortcut)
        shortcut = x, or conv1x1(s) -> BN when the shape changes
    head: global average pool -> FC (zero-initialized)

Not part of the paper's zoo; initializations follow docs/methods.md §3 like every other model.
11,173,962 parameters for 32x32x3 inputs and 10 classes.
"""

from __future__ import annotations

import jax
from flax import nnx

from spectral_jax.models import layers


class BasicBlock(nnx.Module):
    """[B, H, W, C_in] -> [B, ceil(H/s), ceil(W/s), C_out] (post-activation)."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.conv1 = layers.conv(c_in, c_out, 3, stride, dtype=dtype, rngs=rngs)
        self.bn1 = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)
        self.conv2 = layers.conv(c_out, c_out, 3, 1, dtype=dtype, rngs=rngs)
        self.bn2 = layers.batch_norm(c_out, dtype=dtype, rngs=rngs)
        projects = c_in != c_out or stride != 1
        self.proj = layers.conv(c_in, c_out, 1, stride, dtype=dtype, rngs=rngs) if projects else None
        self.proj_bn = layers.batch_norm(c_out, dtype=dtype, rngs=rngs) if projects else None

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        ura = not train
        h = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
        h = self.bn2(self.conv2(h), use_running_average=ura)
        shortcut = x if self.proj is None else self.proj_bn(self.proj(x), use_running_average=ura)
        return jax.nn.relu(h + shortcut)


class ResNet18(nnx.Module):
    """[B, H, W, C] standardized images -> [B, num_classes] logits, any H, W, C."""

    def __init__(self, in_channels: int, num_classes: int, *, dtype, rngs: nnx.Rngs):
        self.dtype = dtype
        self.stem = layers.conv(in_channels, 64, 3, 1, dtype=dtype, rngs=rngs)
        self.stem_bn = layers.batch_norm(64, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List()
        c_in = 64
        for c_out, stride in zip((64, 128, 256, 512), (1, 2, 2, 2)):
            for i in range(2):
                self.blocks.append(BasicBlock(c_in, c_out, stride if i == 0 else 1, dtype=dtype, rngs=rngs))
                c_in = c_out
        self.head = layers.zero_head(c_in, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Penultimate features [B, 512]: the pooled input of the head."""
        x = jax.nn.relu(self.stem_bn(self.stem(x.astype(self.dtype)), use_running_average=not train))
        for block in self.blocks:
            x = block(x, train=train)
        return layers.global_avg_pool(x)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        return self.head(self.features(x, train=train, key=key))


def build(config, input_shape, num_classes, *, dtype, rngs):
    return ResNet18(input_shape[-1], num_classes, dtype=dtype, rngs=rngs)
