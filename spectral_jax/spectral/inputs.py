"""From a split's labels and analysis settings to what the evaluator needs: the lines, the
table of images they index (only the images they use: a streamed split decodes just those),
the direction table, and for planes their frames.

`settings` is a mapping with the keys of `config.analysis` (docs/analysis.md); `take(indices)`
returns the chosen images of the split, uint8 (then `mean`/`std` standardize them) or float.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from spectral_jax.errors import ConfigError
from spectral_jax.spectral import directions as directions_lib
from spectral_jax.spectral import plane as plane_lib
from spectral_jax.spectral.lines import TABLE_DIRECTIONS, Lines, direction_lines, select_lines


@dataclasses.dataclass(frozen=True)
class LineInputs:
    lines: Lines  # start/target index `table` (or the direction table)
    table: np.ndarray  # [T, *S]: uint8 with mean/std, or standardized float32
    mean: np.ndarray | None
    std: np.ndarray | None
    directions: np.ndarray | None  # [D, *S] unit directions of table lines
    pairs: np.ndarray  # int32 [P, 2]: split indices of x_0 and x_1 (-1 where there is none)
    planes: dict[str, np.ndarray] | None = None  # plane lines: triples, labels, coords, extent, side


def split_lines(labels: np.ndarray, settings: Mapping[str, Any]) -> Lines:
    """The lines of `settings["lines"]` (not planes) in split indices."""
    kind, classes = settings["lines"], tuple(settings.get("classes", ()))
    if kind == "pairs":
        return select_lines(labels, settings["pairs_per_class"], settings["pairs_per_class_pair"], classes)
    return direction_lines(labels, kind, length=settings["length"], centered=settings["centered"],
                           images_per_class=settings["images_per_class"], classes=classes)


def line_inputs(labels: np.ndarray, take: Callable[[np.ndarray], np.ndarray], settings: Mapping[str, Any],
                mean=None, std=None) -> LineInputs:
    """The lines of `settings` on a split with `labels`, whose images `take` returns."""
    labels = np.asarray(labels)
    if settings["lines"] == "plane":
        return _plane_inputs(labels, take, settings, mean, std)
    directions = None
    lines = split_lines(labels, settings)
    if settings["lines"] in TABLE_DIRECTIONS:
        directions = directions_lib.table_directions(
            settings["lines"], np.shape(take(lines.start[:1]))[1:], spatial_frequency=settings["spatial_frequency"],
            fourier_index=tuple(settings["fourier_index"]))
    return compact(lines, take, mean, std, directions)


def compact(lines: Lines, take: Callable[[np.ndarray], np.ndarray], mean=None, std=None,
            directions=None) -> LineInputs:
    """Lines in split indices -> a table of just the images they use, and lines indexing it."""
    pairs = lines.pairs if lines.vector == "pair" else np.stack([lines.start, np.full(len(lines), -1)], 1)
    ends = lines.pairs.ravel() if lines.vector == "pair" else lines.start
    used, inverse = np.unique(ends, return_inverse=True)
    table = np.asarray(take(used))
    if lines.vector == "pair":
        lines = lines.with_table_indices(*inverse.reshape(-1, 2).T)
    else:
        lines = lines.with_table_indices(inverse, lines.target)
    return LineInputs(lines, table, mean, std, directions, pairs.astype(np.int32))


def standardized(images: np.ndarray, mean=None, std=None) -> np.ndarray:
    """Host copy of images as standardized float32 (uint8: (x / 255 - mean) / std)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        if mean is None:
            raise ConfigError("uint8 images need mean and std (per channel, [0, 1] pixel units).")
        return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
    return images.astype(np.float32)


def _plane_inputs(labels, take, settings, mean, std) -> LineInputs:
    grid = settings["grid"]
    triples = plane_lib.plane_triples(labels, settings["planes"], tuple(settings.get("classes", ())))
    used, inverse = np.unique(triples.ravel(), return_inverse=True)
    images = standardized(take(used), mean, std)
    x = images[inverse].reshape((len(triples), 3) + images.shape[1:])
    frames = plane_lib.plane_frames(x, grid)
    triple_labels = labels[triples].astype(np.int32)
    lines = plane_lib.plane_lines(len(triples), grid, triple_labels[:, 0])
    table = np.concatenate([frames["x0"], frames["x1"]])
    planes = {"triples": triples, "labels": triple_labels, "coords": frames["coords"], "extent": frames["extent"],
              "side": frames["side"]}
    return LineInputs(lines, table, None, None, None, np.full((len(lines), 2), -1, np.int32), planes)
