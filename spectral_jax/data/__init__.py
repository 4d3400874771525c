"""Datasets by name: `open_dataset` is the one way in.

- `digits`: scikit-learn's bundled digits (the offline default);
- `cifar10` (+ CIFAR-10.1 as `extra` when prepared), `cifar10_1` (the same, CIFAR-10.1
  required), `cifar100`, `svhn_cropped`: tfds array_record data (`spectral-jax prepare NAME`);
- `npz:PATH`: a user's own arrays;
- `imagenet2012`: streamed (`Dataset.streamed`): its splits decode host batches on demand.

Every dataset is a `Dataset` whose splits share one interface (`labels`, `len`, `image_shape`,
`take`). `train_size` (docs/methods.md §4) cuts a fixed seed-0 `train`/`val` split. Missing
data is a `ConfigError` raised here, before any model is built or file written.
"""

from __future__ import annotations

from typing import Any, Callable

from spectral_jax.data import digits, npz_source
from spectral_jax.data.dataset import Dataset, Split, channel_stats, standardize
from spectral_jax.data.splits import split_train_val
from spectral_jax.errors import ConfigError, unknown_name


def _tfds(name: str) -> Callable[[str], Dataset]:
    def load(data_dir: str) -> Dataset:
        from spectral_jax.data import tfds_source  # imports tensorflow_datasets: only when used

        return tfds_source.load(name, data_dir)

    return load


def _cifar10_1(data_dir: str) -> Dataset:
    from spectral_jax.data import tfds_source

    return tfds_source.load_cifar10_1(data_dir)


def _imagenet(data_dir: str, image_size: int = 0) -> Dataset:
    from spectral_jax.data import imagenet

    return imagenet.load(data_dir, image_size or imagenet.IMAGE_SIZE)


# name -> loader(data_dir) -> Dataset (in memory, uint8)
SOURCES: dict[str, Callable[[str], Dataset]] = {
    "digits": lambda data_dir: digits.load(),
    "cifar10": _tfds("cifar10"),
    "cifar10_1": _cifar10_1,
    "cifar100": _tfds("cifar100"),
    "svhn_cropped": _tfds("svhn_cropped"),
}
# name -> loader(data_dir, image_size) -> Dataset of imagenet.StreamSplit (host batches, bounded prefetch)
STREAMS: dict[str, Callable[[str, int], Dataset]] = {
    "imagenet2012": _imagenet,
}
NPZ_FORM = "npz:PATH"


def dataset_names() -> list[str]:
    return sorted(SOURCES) + sorted(STREAMS) + [NPZ_FORM]


def check_dataset_name(name: str) -> None:
    if not (name in SOURCES or name in STREAMS or npz_source.is_npz_name(name)):
        raise unknown_name("dataset", name, dataset_names())


def is_streamed(name: str) -> bool:
    return name in STREAMS


def open_dataset(source: Any, data_dir: str = "", train_size: int = 0, image_size: int = 0) -> Dataset:
    """The dataset `source` names, with its `train` split cut to `train_size` (0 = all; the rest
    becomes `val`). `source` is a dataset name, or a config whose `dataset`, `data_dir`,
    `train_size` and `image_size` (side of streamed images; 0 = the source's default) are used."""
    if not isinstance(source, str):
        name, data_dir = source.dataset, source.data_dir
        train_size, image_size = source.get("train_size", 0), source.get("image_size", 0)
    else:
        name = source
    check_dataset_name(name)
    if name in STREAMS:
        if train_size:
            raise ConfigError(f"{name} is streamed: train_size is not supported for it.")
        return STREAMS[name](data_dir, image_size)
    dataset = npz_source.load(name, data_dir) if npz_source.is_npz_name(name) else SOURCES[name](data_dir)
    return split_train_val(dataset, train_size)


__all__ = ["Dataset", "Split", "channel_stats", "standardize", "open_dataset", "dataset_names",
           "check_dataset_name", "is_streamed", "SOURCES", "STREAMS"]
