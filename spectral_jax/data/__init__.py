"""Datasets by name: a registry of sources, each returning an in-memory `Dataset`.

- `digits`: scikit-learn's bundled digits (the offline default);
- `cifar10` (+ CIFAR-10.1 as `extra` when prepared), `cifar10_1` (the same, CIFAR-10.1
  required), `cifar100`, `svhn_cropped`: tfds array_record data (`spectral-jax prepare NAME`);
- `npz:PATH`: a user's own arrays;
- `imagenet2012`: streamed, not in memory (`load_stream`).

`load_dataset` applies `train_size` (PAPER_SPEC §4): a fixed seed-0 split into `train` and `val`.
Missing data is a `ConfigError` raised here, before any model is built or file written.
"""

from __future__ import annotations

from typing import Callable

from spectral_jax.data import digits, npz_source
from spectral_jax.data.dataset import Dataset, Split, channel_stats, standardize
from spectral_jax.data.splits import split_train_val


def _tfds(name: str) -> Callable[[str], Dataset]:
    def load(data_dir: str) -> Dataset:
        from spectral_jax.data import tfds_source  # imports tensorflow_datasets: only when used

        return tfds_source.load(name, data_dir)

    return load


def _cifar10_1(data_dir: str) -> Dataset:
    from spectral_jax.data import tfds_source

    return tfds_source.load_cifar10_1(data_dir)


def _imagenet(data_dir: str, image_size: int = 0):
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
# name -> loader(data_dir, image_size) -> imagenet.StreamingDataset (host batches, bounded prefetch)
STREAMS: dict[str, Callable] = {
    "imagenet2012": _imagenet,
}
NPZ_FORM = "npz:PATH"


def dataset_names() -> list[str]:
    return sorted(SOURCES) + sorted(STREAMS) + [NPZ_FORM]


def check_dataset_name(name: str) -> None:
    from spectral_jax.config import ConfigError

    if not (name in SOURCES or name in STREAMS or npz_source.is_npz_name(name)):
        raise ConfigError(f"Unknown dataset {name!r}. Valid datasets: {', '.join(dataset_names())}.")


def load_dataset(name: str, data_dir: str = "", train_size: int = 0) -> Dataset:
    """The in-memory dataset `name`, its `train` split cut to `train_size` (0 = all) with the rest as `val`."""
    from spectral_jax.config import ConfigError

    check_dataset_name(name)
    if name in STREAMS:
        raise ConfigError(f"{name} is a streaming dataset (it does not fit in memory): open it with "
                          f"spectral_jax.data.load_stream({name!r}, data_dir); `train` and `analyze` do so themselves.")
    dataset = npz_source.load(name, data_dir) if npz_source.is_npz_name(name) else SOURCES[name](data_dir)
    return split_train_val(dataset, train_size)


def load_stream(name: str, data_dir: str = "", image_size: int = 0):
    """A streaming dataset (`imagenet2012`): splits yield uint8 host batches (see data/imagenet.py)."""
    from spectral_jax.config import ConfigError

    if name not in STREAMS:
        raise ConfigError(f"{name!r} is not a streaming dataset; streaming datasets: {', '.join(sorted(STREAMS))}.")
    return STREAMS[name](data_dir, image_size)


__all__ = ["Dataset", "Split", "channel_stats", "standardize", "load_dataset", "load_stream", "dataset_names",
           "check_dataset_name", "SOURCES", "STREAMS"]
