"""Which lines to evaluate (docs/methods.md §2.3-2.4; docs/analysis.md "Lines").

A line is x(t) = x_0 + t D for t in [lo, hi], with x_0 an image of a table (a split, or
given arrays) and D formed on the device in one of four ways (`Lines.vector`):

- "pair":     D = x_1 - x_0 with x_1 another image of the table, t in [0, 1];
- "table":    D = a unit direction of a direction table (Fourier basis image, f / 1/f composite,
              or the user's own), t in [0, L] or [-L/2, L/2];
- "random":   D = a seeded Gaussian direction, unit norm, one per line;
- "gradient": D = the input gradient of the loss at x_0, unit norm (the adversarial direction).

Pairs are taken in split order (no shuffling), as in the reference code:
- within class c: disjoint consecutive pairs (0,1), (2,3), ... of the images of class c,
  at most `pairs_per_class` of them and at most n_c // 2 (the data caps it);
- between classes a < b (all unordered class pairs): pair i = (i-th image of a, i-th image
  of b), at most `pairs_per_class_pair` and at most min(n_a, n_b).
Direction lines start at the first `images_per_class` images of each class (0 = all).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from spectral_jax.errors import ConfigError

# The kind of each line (saved as int8 `kind`, summarized per kind).
KINDS = ("within", "between", "random", "fourier", "f", "1/f", "gradient", "custom", "endpoints", "plane")
WITHIN, BETWEEN = 0, 1
TABLE_DIRECTIONS = ("fourier", "f", "1/f")
VECTORS = ("pair", "table", "random", "gradient")


@dataclasses.dataclass(frozen=True)
class Lines:
    """Host-side description of P lines (see the module docstring)."""

    start: np.ndarray  # int32 [P]: table index of x_0
    target: np.ndarray  # int32 [P]: pair: table index of x_1; table: direction row; else -1
    lo: np.ndarray  # float32 [P]
    hi: np.ndarray  # float32 [P]
    kind: np.ndarray  # int8 [P]: index into KINDS
    labels: np.ndarray  # int32 [P, 2]: labels of x_0 and x_1 (-1 where there is none)
    vector: str = "pair"

    def __post_init__(self):
        if self.vector not in VECTORS:
            raise ValueError(f"Lines.vector must be one of {', '.join(VECTORS)}, got {self.vector!r}.")

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def pairs(self) -> np.ndarray:
        """int32 [P, 2]: (x_0, x_1) indices of pair lines; (x_0, target) otherwise."""
        return np.stack([self.start, self.target], axis=1).astype(np.int32)

    @property
    def classes(self) -> np.ndarray:
        """int32 [P]: the line's class (label of x_0; -1 when unlabeled)."""
        return self.labels[:, 0]

    def with_table_indices(self, start: np.ndarray, target: np.ndarray) -> "Lines":
        return dataclasses.replace(self, start=np.asarray(start, np.int32), target=np.asarray(target, np.int32))


def pair_lines(pairs: np.ndarray, labels: np.ndarray | None = None, kind: np.ndarray | int | None = None) -> Lines:
    """Lines between images `pairs` [P, 2] of a table; `labels` [N] of the table's images."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0 or not np.issubdtype(pairs.dtype, np.integer):
        raise ConfigError(f"pairs must be a non-empty integer array [P, 2], got {pairs.dtype} {pairs.shape}.")
    if labels is not None:
        check_indices(pairs, len(labels), "pair indices")
        pair_labels = np.asarray(labels)[pairs].astype(np.int32)
        if kind is None:
            kind = np.where(pair_labels[:, 0] == pair_labels[:, 1], WITHIN, BETWEEN)
    else:
        pair_labels = np.full(pairs.shape, -1, np.int32)
    kind = np.broadcast_to(np.asarray(KINDS.index("endpoints") if kind is None else kind), len(pairs))
    p = len(pairs)
    return Lines(start=pairs[:, 0].astype(np.int32), target=pairs[:, 1].astype(np.int32),
                 lo=np.zeros(p, np.float32), hi=np.ones(p, np.float32), kind=kind.astype(np.int8),
                 labels=pair_labels, vector="pair")


def check_indices(indices: np.ndarray, n: int, what: str) -> None:
    """A clear error for indices outside [0, n) (a gather would silently clamp them)."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices[(indices < 0) | (indices >= n)].ravel()[:5]
        raise ConfigError(f"{what} out of range: {bad.tolist()} not in [0, {n}) (the table has {n} images).")


def class_indices(labels: np.ndarray, classes: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """class -> indices of its images in split order; `classes` restricts (unknown is an error)."""
    labels = np.asarray(labels)
    present = [int(c) for c in np.unique(labels)]
    if classes:
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise ConfigError(f"Unknown class {unknown}: the split's labels are {present[:20]}"
                              f"{' ...' if len(present) > 20 else ''}.")
        present = sorted(set(int(c) for c in classes))
    return {c: np.flatnonzero(labels == c) for c in present}


def within_class_pairs(labels: np.ndarray, pairs_per_class: int, classes: Sequence[int] | None = None) -> np.ndarray:
    out = []
    for idx in class_indices(labels, classes).values():
        n = min(pairs_per_class, len(idx) // 2)
        out.append(idx[: 2 * n].reshape(n, 2))
    return np.concatenate(out).astype(np.int32) if out else np.zeros((0, 2), np.int32)


def between_class_pairs(labels: np.ndarray, pairs_per_class_pair: int, classes: Sequence[int] | None = None) -> np.ndarray:
    out = []
    for (a, ia), (b, ib) in itertools.combinations(class_indices(labels, classes).items(), 2):
        n = min(pairs_per_class_pair, len(ia), len(ib))
        out.append(np.stack([ia[:n], ib[:n]], axis=1))
    return np.concatenate(out).astype(np.int32) if out else np.zeros((0, 2), np.int32)


def select_lines(labels: np.ndarray, pairs_per_class: int, pairs_per_class_pair: int,
                 classes: Sequence[int] | None = None) -> Lines:
    """Within-class lines first, then between-class lines, between images of one split."""
    labels = np.asarray(labels)
    within = within_class_pairs(labels, pairs_per_class, classes)
    between = between_class_pairs(labels, pairs_per_class_pair, classes)
    pairs = np.concatenate([within, between]).astype(np.int32)
    if len(pairs) == 0:
        raise ConfigError(f"No interpolation lines: {len(labels)} images are too few for "
                          f"{pairs_per_class} within-class pairs per class (2 images each) and "
                          f"{pairs_per_class_pair} between-class pairs per class pair.")
    kind = np.concatenate([np.full(len(within), WITHIN), np.full(len(between), BETWEEN)])
    return pair_lines(pairs, labels, kind)


def direction_lines(labels: np.ndarray, kind: str, *, length: float, centered: bool = False,
                    images_per_class: int = 0, classes: Sequence[int] | None = None,
                    num_directions: int = 1) -> Lines:
    """One line from each chosen image along a direction of kind `kind` (random, fourier, f,
    1/f, gradient, custom), of length `length` (standardized units), from x (t in [0, L]) or
    centred on it (t in [-L/2, L/2]). Table directions: row `i % num_directions` for line i."""
    if kind not in KINDS[2:8]:
        raise ConfigError(f"Unknown direction kind {kind!r}; valid: {', '.join(KINDS[2:8])}.")
    if not length > 0:
        raise ConfigError(f"Line length must be > 0 (standardized units), got {length!r}.")
    chosen = [idx[:images_per_class] if images_per_class else idx for idx in class_indices(labels, classes).values()]
    start = np.sort(np.concatenate(chosen)).astype(np.int32) if chosen else np.zeros(0, np.int32)
    if len(start) == 0:
        raise ConfigError("No direction lines: the split has no images.")
    p = len(start)
    vector = {"random": "random", "gradient": "gradient"}.get(kind, "table")
    target = (np.arange(p) % num_directions).astype(np.int32) if vector == "table" else np.full(p, -1, np.int32)
    lo, hi = (-length / 2, length / 2) if centered else (0.0, length)
    labels = np.stack([np.asarray(labels)[start], np.full(p, -1)], axis=1).astype(np.int32)
    return Lines(start=start, target=target, lo=np.full(p, lo, np.float32), hi=np.full(p, hi, np.float32),
                 kind=np.full(p, KINDS.index(kind), np.int8), labels=labels, vector=vector)
