"""In-memory datasets: uint8 NHWC images, int32 labels, per-channel standardization.

Images stay uint8 (on the device, whole, for small datasets) and are standardized on the
device right before the model sees them: x = (u8 / 255 - mean) / std (DESIGN.md, Interfaces).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int32 [N]

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be [N]={self.images.shape[0]}, got {self.labels.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def take(self, indices) -> "Split":
        """The chosen examples, in the given order."""
        indices = np.asarray(indices, np.int64)
        return Split(self.images[indices], self.labels[indices])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset by split. Splits are in-memory `Split`s, or for a streamed dataset (imagenet2012)
    `imagenet.StreamSplit`s; both give `labels` [N], `len()`, `image_shape` and `take(indices)`
    (an in-memory `Split` of chosen examples), so callers branch only on `streamed`."""

    name: str
    num_classes: int
    mean: np.ndarray  # float32 [C], in [0, 1] pixel units, from the training split
    std: np.ndarray  # float32 [C]
    splits: dict  # name -> Split (or StreamSplit)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.splits["train"].image_shape)

    @property
    def streamed(self) -> bool:
        """True when the splits stream host batches instead of holding arrays."""
        return not isinstance(self.splits["train"], Split)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise ValueError(f"Dataset {self.name!r} has no split {name!r}; it has {', '.join(self.splits)}.")
        return self.splits[name]


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (population) of uint8 images [N, H, W, C], in [0, 1] units.

    Sums of pixel values and of their squares are exact integers (int64), taken over chunks
    of images so memory stays bounded (50k CIFAR images would need 1.2 GB as float64).
    """
    channels = images.shape[-1]
    total, total_sq = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].reshape(-1, channels).astype(np.int64)
        total += x.sum(0)
        total_sq += (x * x).sum(0)
    count = images.size // channels
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return (mean / 255.0).astype(np.float32), (np.sqrt(var) / 255.0).astype(np.float32)


def standardize(images_u8: jnp.ndarray, mean: jnp.ndarray, std: jnp.ndarray) -> jnp.ndarray:
    """uint8 [..., C] -> standardized float32, on whatever device the images live on."""
    return (images_u8.astype(jnp.float32) / 255.0 - mean) / std
