"""Real (unmocked) tfds array_record directories with synthetic images, built without TensorFlow.

The builders subclass tfds' own `cifar10` / `imagenet2012` builders (same name, version and
features) but generate a few synthetic examples whose images are already encoded by PIL, so
tfds never needs TensorFlow to write them. `tfds.data_source` then reads them exactly as it
reads the real prepared datasets.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def cifar10_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), (np.arange(n) % 10).astype(np.int64)


class FakeCifar10(tfds.builder_cls("cifar10"), skip_registration=True):
    name = "cifar10"
    SIZES = {"train": 40, "test": 20}

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.SIZES}

    def _generate_examples(self, split):
        images, labels = cifar10_arrays(self.SIZES[split], seed=len(split))
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"id": f"{split}_{i:05d}", "image": encode(image, "PNG"), "label": int(label)}


def imagenet_image(index: int) -> np.ndarray:
    """A smooth synthetic photo of varying size (JPEG-friendly), different per index."""
    h, w = 40 + 7 * (index % 5), 64 - 5 * (index % 4)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4 + index * 20) % 256, (y * 4) % 256, ((x + y) * 2 + index * 9) % 256], -1)
    return img.astype(np.uint8)


class FakeImagenet2012(tfds.builder_cls("imagenet2012"), skip_registration=True):
    name = "imagenet2012"
    SIZES = {"train": 12, "validation": 5}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "not needed"

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.SIZES}

    def _generate_examples(self, split):
        # validation: 5 classes, one image each; train: 4 classes of 3 images (within-class pairs)
        offset = 100 if split == "validation" else 0
        for i in range(self.SIZES[split]):
            label = (7 * i + offset) % 1000 if split == "validation" else 7 * (i // 3)
            yield f"{split}_{i}", {"file_name": f"{split}_{i}.JPEG", "image": encode(imagenet_image(i + offset), "JPEG"),
                                   "label": label}


def build(builder_cls, data_dir: str) -> str:
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    return builder.data_dir
