"""`npz:PATH`: a user's own images from one .npz file.

Arrays: `images` (uint8 [N, H, W, C]) and `labels` (integers [N], classes 0..K-1), and
optionally `test_images` / `test_labels`. Without a test set, a fixed seed-0 shuffle holds out
`TEST_FRACTION` of the examples as `test` (file order kept inside each split). K is one more
than the largest label in either split. Standardization uses the training split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spectral_jax.data.dataset import Dataset, Split, channel_stats
from spectral_jax.errors import ConfigError

PREFIX = "npz:"
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def is_npz_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX) and len(name) > len(PREFIX)


def load(name: str, data_dir: str = "") -> Dataset:
    """Loads `npz:PATH`; a relative PATH is taken from `data_dir` when it is set, else the cwd."""
    path = Path(name[len(PREFIX):]).expanduser()
    if not path.is_absolute() and data_dir:
        path = Path(data_dir).expanduser() / path
    if not path.is_file():
        raise ConfigError(f"Dataset {name!r}: no file {str(path)!r}. Write one with "
                          f"np.savez(PATH, images=uint8 [N,H,W,C], labels=int [N]) "
                          f"(optionally test_images=..., test_labels=...).")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key in ("images", "labels"):
        if key not in arrays:
            raise ConfigError(f"Dataset {name!r}: {path} has no array {key!r} (it has {', '.join(arrays) or 'none'}).")
    if ("test_images" in arrays) != ("test_labels" in arrays):
        raise ConfigError(f"Dataset {name!r}: give both test_images and test_labels, or neither.")

    train = _split(name, arrays["images"], arrays["labels"], "images", "labels")
    if "test_images" in arrays:
        test = _split(name, arrays["test_images"], arrays["test_labels"], "test_images", "test_labels")
        if test.images.shape[1:] != train.images.shape[1:]:
            raise ConfigError(f"Dataset {name!r}: test_images are {test.images.shape[1:]}, "
                              f"images are {train.images.shape[1:]}; they must match.")
    else:
        train, test = _hold_out(name, train)
    num_classes = int(max(train.labels.max(initial=0), test.labels.max(initial=0))) + 1
    mean, std = channel_stats(train.images)
    return Dataset(name=name, num_classes=num_classes, mean=mean, std=std, splits={"train": train, "test": test})


def _split(name: str, images: np.ndarray, labels: np.ndarray, ikey: str, lkey: str) -> Split:
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError(f"Dataset {name!r}: {ikey} must be uint8 [N,H,W,C] (add a channel axis for "
                          f"grayscale), got {images.dtype} {images.shape}.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (images.shape[0],):
        raise ConfigError(f"Dataset {name!r}: {lkey} must be integers [N={images.shape[0]}], "
                          f"got {labels.dtype} {labels.shape}.")
    if labels.size and labels.min() < 0:
        raise ConfigError(f"Dataset {name!r}: {lkey} must be class indices >= 0, got min {labels.min()}.")
    return Split(np.ascontiguousarray(images), labels.astype(np.int32))


def _hold_out(name: str, split: Split) -> tuple[Split, Split]:
    n = len(split)
    n_test = int(round(n * TEST_FRACTION))
    if n_test < 1 or n - n_test < 1:
        raise ConfigError(f"Dataset {name!r}: {n} examples are too few to hold out a test split; "
                          f"add test_images/test_labels.")
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    return (Split(split.images[train_idx], split.labels[train_idx]),
            Split(split.images[test_idx], split.labels[test_idx]))
