"""`imagenet2012`: a streaming source (1.28M images do not fit in memory).

Records are read with `tfds.data_source` from a prepared array_record directory, JPEG bytes
undecoded; the host decodes, resizes and crops them with PIL in worker threads and yields
fixed-size uint8 batches through a bounded prefetch queue, so memory stays at a few batches.
Batches stay uint8 [B, S, S, 3] and are standardized on the device like every other dataset.

- evaluation (`train=False`): shorter side resized to S/0.875 (256 for S=224), centre crop S×S;
- training (`train=True`): Inception-style random-resized crop (area 8-100 %, aspect 3/4-4/3)
  then a horizontal flip with p = 0.5, drawn from (seed, epoch, example index), so a batch does
  not depend on thread timing.

Standardization uses the usual ImageNet training-set statistics rather than a pass over 1.28M
images. A `Dataset` of `StreamSplit`s; `StreamSplit.take` gives an in-memory `Split` of chosen
examples (analysis pairs).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from spectral_jax.data.dataset import Dataset, Split

NAME = "imagenet2012"
NUM_CLASSES = 1000
IMAGE_SIZE = 224
CENTER_CROP_FRACTION = 0.875  # eval: crop S from a shorter side of S / 0.875
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SPLITS = {"train": "train", "test": "validation"}  # our name -> tfds split


@dataclasses.dataclass(frozen=True)
class HostBatch:
    images: np.ndarray  # uint8 [B, S, S, 3]
    labels: np.ndarray  # int32 [B]
    mask: np.ndarray  # bool [B]: False marks padding in the last evaluation batch


class StreamSplit:
    """One split of a random-access source of {"image": JPEG bytes or uint8 [h,w,3], "label": int}."""

    def __init__(self, source: Sequence[dict[str, Any]], *, image_size: int = IMAGE_SIZE, train: bool = False,
                 num_workers: int | None = None):
        self.source = source
        self.image_size = image_size
        self.train = train
        self.num_workers = num_workers or min(16, os.cpu_count() or 1)
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    @property
    def labels(self) -> np.ndarray:
        """int32 [N], read once (images stay undecoded) and cached."""
        if self._labels is None:
            self._labels = np.fromiter((int(self.source[i]["label"]) for i in range(len(self))), np.int32, len(self))
        return self._labels

    def example(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        """(uint8 [S, S, 3], label) of one example: with `rng`, the training crop and flip drawn
        from it; without, the evaluation centre crop."""
        record = self.source[int(index)]
        image = decode(record["image"], self.image_size)
        if rng is not None:
            out = random_resized_crop(image, self.image_size, rng)
            if rng.random() < 0.5:
                out = out[:, ::-1]
        else:
            out = center_crop(image, self.image_size)
        return np.ascontiguousarray(out), int(record["label"])

    def take(self, indices: Sequence[int]) -> Split:
        """Chosen examples as an in-memory `Split` (evaluation preprocessing), e.g. for line pairs."""
        with ThreadPoolExecutor(self.num_workers) as pool:
            examples = list(pool.map(self.example, indices))
        images = np.stack([e[0] for e in examples]) if examples else np.zeros((0, *self.image_shape), np.uint8)
        return Split(images, np.array([e[1] for e in examples], np.int32))

    def batches(self, batch_size: int, *, seed: int = 0, epoch: int = 0, prefetch: int = 2) -> Iterator[HostBatch]:
        """Batches of one epoch, at most `prefetch` decoded ahead of the consumer.

        Training: order shuffled from (seed, epoch), last partial batch dropped. Evaluation: file
        order, every example once, the last batch padded (mask False) to `batch_size`.
        """
        n = len(self)
        if self.train:
            order = np.random.default_rng([seed, epoch]).permutation(n)
            starts = range(0, n - batch_size + 1, batch_size)
        else:
            order = np.arange(n)
            starts = range(0, n, batch_size)

        def build(start: int, pool: ThreadPoolExecutor) -> HostBatch:
            idx = order[start:start + batch_size]
            rngs = [np.random.default_rng([seed, epoch, int(i)]) if self.train else None for i in idx]
            examples = list(pool.map(self.example, idx, rngs))
            images = np.zeros((batch_size, *self.image_shape), np.uint8)
            labels = np.zeros((batch_size,), np.int32)
            images[:len(idx)] = np.stack([e[0] for e in examples])
            labels[:len(idx)] = [e[1] for e in examples]
            return HostBatch(images, labels, np.arange(batch_size) < len(idx))

        def produce() -> Iterator[HostBatch]:
            with ThreadPoolExecutor(self.num_workers) as pool:
                for start in starts:
                    yield build(start, pool)

        return prefetch_iterator(produce, prefetch)


def prefetch_iterator(make: Callable[[], Iterator[Any]], size: int) -> Iterator[Any]:
    """Runs `make()` in a background thread, holding at most `size` finished items.

    Errors in the producer re-raise in the consumer; closing the consumer stops the producer.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}.")
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        produced = make()
        try:
            for item in produced:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(e)
        finally:
            getattr(produced, "close", lambda: None)()  # ends the producer's own cleanup (thread pools)

    def consume():
        # The thread starts with the first next(), so an iterator never used holds no thread.
        thread = threading.Thread(target=run, daemon=True, name="spectral-jax-prefetch")
        thread.start()
        try:
            while True:
                item = items.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    return consume()


# --------------------------------------------------------------------------------------
# Host preprocessing (PIL).


def decode(image: bytes | np.ndarray, target_size: int):
    """JPEG bytes or a uint8 array -> RGB PIL image. JPEGs are decoded at reduced scale when
    that still leaves a shorter side of at least `target_size` (PIL draft mode), which is much faster."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray)):
        pil = Image.open(io.BytesIO(image))
        pil.draft("RGB", (target_size, target_size))
        return pil.convert("RGB")
    return Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")


def center_crop(image, size: int) -> np.ndarray:
    """Resize the shorter side to round(size / 0.875), then the central size×size crop: uint8 [S,S,3]."""
    from PIL import Image

    w, h = image.size
    short = int(round(size / CENTER_CROP_FRACTION))
    scale = short / min(w, h)
    nw, nh = max(size, int(round(w * scale))), max(size, int(round(h * scale)))
    resized = image.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), np.uint8)


def random_resized_crop(image, size: int, rng: np.random.Generator, area=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3), attempts: int = 10) -> np.ndarray:
    """A crop of random area and aspect ratio resized to size×size (uint8); centre crop if no try fits."""
    from PIL import Image

    w, h = image.size
    for _ in range(attempts):
        target = rng.uniform(*area) * w * h
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = image.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
            return np.asarray(crop, np.uint8)
    return center_crop(image, size)


# --------------------------------------------------------------------------------------
# The registered loader.


def load(data_dir: str = "", image_size: int = IMAGE_SIZE) -> Dataset:
    """Opens `imagenet2012` (train, and validation as `test`) from a prepared directory."""
    import tensorflow_datasets as tfds

    from spectral_jax.data import tfds_source

    sources = {}
    for ours, theirs in SPLITS.items():
        try:
            sources[ours] = tfds.data_source(NAME, split=theirs, data_dir=data_dir or None, download=False,
                                             decoders={"image": tfds.decode.SkipDecoding()})
        except Exception as e:  # tfds reports missing data as NotImplementedError, FileNotFoundError, ...
            raise tfds_source.missing_data_error(NAME, data_dir, e) from e
    splits = {k: StreamSplit(s, image_size=image_size, train=(k == "train")) for k, s in sources.items()}
    return Dataset(NAME, NUM_CLASSES, MEAN, STD, splits)
