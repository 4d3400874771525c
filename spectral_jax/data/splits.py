"""Train/validation split (docs/methods.md §4): a fixed seed-0 shuffle of the training split, the
first `train_size` examples train, the rest become the `val` split.

The shuffle is the reference's `np.random.seed(0); np.random.shuffle(arange(N))`, fixed across
runs whatever the run's seed, so every run with the same `train_size` trains on the same
examples. Inside each part the examples keep file order (pair selection walks images in split
order). Standardization stays that of the whole training split, as in the reference, where
the CIFAR-10 constants do not change with `train_size`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spectral_jax.data.dataset import Dataset
from spectral_jax.errors import ConfigError

SPLIT_SEED = 0


def shuffled_indices(n: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """int [n]: the reference's fixed shuffle of the training split."""
    return np.random.RandomState(seed).permutation(n)


def split_train_val(dataset: Dataset, train_size: int, seed: int = SPLIT_SEED) -> Dataset:
    """`dataset` with its `train` split cut to `train_size` examples and the rest as `val`.

    train_size 0 (or the whole split) keeps the dataset as it is, with no `val` split.
    """
    train = dataset.split("train")
    n = len(train)
    if not isinstance(train_size, int) or isinstance(train_size, bool) or train_size < 0:
        raise ConfigError(f"train_size must be an integer >= 0 (0 = all), got {train_size!r}.")
    if train_size > n:
        raise ConfigError(f"train_size={train_size} is larger than {dataset.name}'s training split "
                          f"({n} examples); use --config.train_size={n} or less (0 = all).")
    if train_size in (0, n):
        return dataset
    order = shuffled_indices(n, seed)
    train_idx, val_idx = np.sort(order[:train_size]), np.sort(order[train_size:])
    splits = dict(dataset.splits, train=train.take(train_idx), val=train.take(val_idx))
    return dataclasses.replace(dataset, splits=splits)
