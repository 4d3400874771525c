"""tfds image-classification datasets read into memory from prepared array_record files.

`cifar10`, `cifar100`, `svhn_cropped` and `cifar10_1` (CIFAR-10.1 v4, ~2k test images) are read
with `tfds.data_source`, which reads array_record files directly, so no TensorFlow is needed at
run time; they are built once with `spectral-jax prepare NAME` (data/prepare.py). tfds is always
called with `download=False`: offline, a download attempt retries for minutes.

CIFAR-10.1 is CIFAR-10's `extra` split, standardized with CIFAR-10's training statistics
(docs/methods.md §2.3): the dataset `cifar10` includes it when it is prepared, and `cifar10_1` is the
same dataset with CIFAR-10.1 required. Missing data is a `ConfigError` that names the dataset,
the directory looked in and the command that prepares it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from spectral_jax.errors import ConfigError
from spectral_jax.data.dataset import Dataset, Split, channel_stats


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    tfds_name: str
    splits: dict[str, str]  # our split name -> tfds split name
    num_classes: int


SPECS = {
    "cifar10": TfdsSpec("cifar10", {"train": "train", "test": "test"}, 10),
    "cifar100": TfdsSpec("cifar100", {"train": "train", "test": "test"}, 100),
    "svhn_cropped": TfdsSpec("svhn_cropped", {"train": "train", "test": "test"}, 10),
    # Only a test split: it is CIFAR-10's `extra` split, never a dataset of its own.
    "cifar10_1": TfdsSpec("cifar10_1", {"extra": "test"}, 10),
}


def prepare_command(tfds_name: str, data_dir: str = "") -> str:
    return f"spectral-jax prepare {tfds_name}" + (f" --data_dir {data_dir}" if data_dir else "")


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # a dependency of spectral-jax; only a broken install lands here
        raise ConfigError(f"tfds datasets need tensorflow-datasets: pip install 'tensorflow-datasets>=4.9.10' ({e}).")
    return tfds


def default_data_dir() -> str:
    """tfds' own default location (~/tensorflow_datasets, or $TFDS_DATA_DIR)."""
    return str(_tfds().core.constants.DATA_DIR)


def missing_data_error(tfds_name: str, data_dir: str, cause: BaseException | None = None) -> ConfigError:
    """The error for unprepared data: dataset, directory looked in, and the command to run."""
    tfds = _tfds()
    where = data_dir or default_data_dir()
    try:
        version_dir = Path(tfds.builder(tfds_name, data_dir=data_dir or None).data_dir)
    except Exception:  # the message must not fail because tfds cannot describe the layout
        version_dir = Path(where) / tfds_name
    needs = "(preparing needs TensorFlow, from pip install 'spectral-jax[prepare]', and network access)"
    if (version_dir / "dataset_info.json").exists():
        reason = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}" if cause and str(cause).strip() else ""
        return ConfigError(
            f"Dataset {tfds_name!r} in data_dir {where!r}: {version_dir} holds {tfds_name}, but tfds.data_source "
            f"cannot read it; it reads only the array_record format (tfds said: {reason}). Convert it in place with\n"
            f"  tfds convert_format --dataset_version_dir {version_dir} --out_file_format array_record\n"
            f"or prepare a copy in another directory with\n"
            f"  {prepare_command(tfds_name, 'NEW_DIR')}\n"
            f"and pass --config.data_dir=NEW_DIR {needs}.")
    return ConfigError(
        f"Dataset {tfds_name!r} is not prepared in data_dir {where!r} (looked for {version_dir}). "
        f"Prepare it once with\n"
        f"  {prepare_command(tfds_name, data_dir)}\n"
        f"{needs}, or point --config.data_dir at a directory that holds it.")


def open_source(tfds_name: str, split: str, data_dir: str = ""):
    """`tfds.data_source` of one split (random access, len()), or the missing-data ConfigError."""
    tfds = _tfds()
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # tfds warns about the empty folder before failing; the error says it
    try:
        return tfds.data_source(tfds_name, split=split, data_dir=data_dir or None, download=False)
    except Exception as e:  # tfds reports missing data as NotImplementedError, FileNotFoundError, ...
        raise missing_data_error(tfds_name, data_dir, e) from e
    finally:
        absl_logger.setLevel(level)


def read_split(source, num_classes: int) -> Split:
    """All examples of a data source as uint8 images [N,H,W,C] and int32 labels [N], in the
    original file order where records carry an `id` ("train_00042": CIFAR, SVHN), else in
    tfds' order (CIFAR-10.1, which the reference also reads through tfds)."""
    n = len(source)
    if n == 0:
        raise ConfigError(f"{source!r} is empty.")
    first = source[0]
    images = np.empty((n, *np.shape(first["image"])), np.uint8)
    labels = np.empty((n,), np.int32)
    ids = [] if "id" in first else None
    for i in range(n):  # one record at a time: decoding is GIL-bound, threads do not help
        example = first if i == 0 else source[i]
        images[i] = example["image"]
        labels[i] = example["label"]
        if ids is not None:
            ids.append(_text(example["id"]))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"{source!r}: labels outside 0..{num_classes - 1}.")
    if ids is not None:
        # tfds stores records shuffled by key; the zero-padded ids restore the file order
        # that pair selection walks (docs/methods.md §2.3).
        order = np.argsort(np.array(ids), kind="stable")
        images, labels = images[order], labels[order]
    return Split(images, labels)


def _text(value) -> str:
    value = value.item() if isinstance(value, np.ndarray) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def load_splits(spec: TfdsSpec, data_dir: str = "") -> dict[str, Split]:
    # Open every split before reading any, so missing data fails before minutes of decoding.
    sources = {ours: open_source(spec.tfds_name, theirs, data_dir) for ours, theirs in spec.splits.items()}
    return {ours: read_split(source, spec.num_classes) for ours, source in sources.items()}


def load(name: str, data_dir: str = "") -> Dataset:
    """`cifar10` (with `extra` = CIFAR-10.1 when prepared), `cifar100`, `svhn_cropped`."""
    spec = SPECS[name]
    splits = load_splits(spec, data_dir)
    if name == "cifar10":
        try:
            splits.update(load_splits(SPECS["cifar10_1"], data_dir))
        except ConfigError:
            pass  # CIFAR-10.1 is optional for `cifar10`; the dataset `cifar10_1` requires it
    return _dataset(name, spec.num_classes, splits)


def load_cifar10_1(data_dir: str = "") -> Dataset:
    """CIFAR-10 with the CIFAR-10.1 test set required as its `extra` split."""
    extra = load_splits(SPECS["cifar10_1"], data_dir)
    splits = load_splits(SPECS["cifar10"], data_dir)
    return _dataset("cifar10_1", 10, {**splits, **extra})


def _dataset(name: str, num_classes: int, splits: dict[str, Split]) -> Dataset:
    shapes = {k: s.images.shape[1:] for k, s in splits.items()}
    if len(set(shapes.values())) != 1:
        raise ConfigError(f"Dataset {name!r}: splits differ in image shape: {shapes}.")
    mean, std = channel_stats(splits["train"].images)  # every split uses the training statistics
    return Dataset(name=name, num_classes=num_classes, mean=mean, std=std, splits=splits)
