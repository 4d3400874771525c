"""Datasets by name: a registry of sources, each returning an in-memory `Dataset`."""

from __future__ import annotations

from typing import Callable

from spectral_jax.data import digits
from spectral_jax.data.dataset import Dataset, Split, channel_stats, standardize

# name -> loader(data_dir) -> Dataset
SOURCES: dict[str, Callable[[str], Dataset]] = {
    "digits": lambda data_dir: digits.load(),
}


def dataset_names() -> list[str]:
    return sorted(SOURCES)


def check_dataset_name(name: str) -> None:
    from spectral_jax.config import ConfigError

    if name not in SOURCES:
        raise ConfigError(f"Unknown dataset {name!r}. Valid datasets: {', '.join(dataset_names())}.")


def load_dataset(name: str, data_dir: str = "") -> Dataset:
    check_dataset_name(name)
    return SOURCES[name](data_dir)


__all__ = ["Dataset", "Split", "channel_stats", "standardize", "load_dataset", "dataset_names", "SOURCES"]
