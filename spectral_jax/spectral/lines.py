"""Which lines to evaluate: within-class and between-class image pairs (PAPER_SPEC §2.3).

Images are taken in split order (no shuffling), as in the reference code:
- within class c: disjoint consecutive pairs (0,1), (2,3), ... of the images of class c,
  at most `pairs_per_class` of them and at most n_c // 2 (the data caps it);
- between classes a < b (all unordered class pairs): pair i = (i-th image of a, i-th image
  of b), at most `pairs_per_class_pair` and at most min(n_a, n_b).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

WITHIN, BETWEEN = 0, 1


@dataclasses.dataclass(frozen=True)
class Lines:
    pairs: np.ndarray  # int32 [P, 2]: indices of (x0, x1) in the split
    kind: np.ndarray  # int8 [P]: 0 within-class, 1 between-class
    labels: np.ndarray  # int32 [P, 2]: labels of (x0, x1)

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def within_class_pairs(labels: np.ndarray, pairs_per_class: int) -> np.ndarray:
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = min(pairs_per_class, len(idx) // 2)
        out.append(idx[: 2 * n].reshape(n, 2))
    return np.concatenate(out).astype(np.int32) if out else np.zeros((0, 2), np.int32)


def between_class_pairs(labels: np.ndarray, pairs_per_class_pair: int) -> np.ndarray:
    out = []
    for a, b in itertools.combinations(np.unique(labels), 2):
        ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
        n = min(pairs_per_class_pair, len(ia), len(ib))
        out.append(np.stack([ia[:n], ib[:n]], axis=1))
    return np.concatenate(out).astype(np.int32) if out else np.zeros((0, 2), np.int32)


def select_lines(labels: np.ndarray, pairs_per_class: int, pairs_per_class_pair: int) -> Lines:
    """Within-class lines first, then between-class lines."""
    labels = np.asarray(labels)
    within = within_class_pairs(labels, pairs_per_class)
    between = between_class_pairs(labels, pairs_per_class_pair)
    pairs = np.concatenate([within, between]).astype(np.int32)
    kind = np.concatenate([np.full(len(within), WITHIN), np.full(len(between), BETWEEN)]).astype(np.int8)
    if len(pairs) == 0:
        raise ValueError("No interpolation lines: the split has too few images per class.")
    return Lines(pairs=pairs, kind=kind, labels=labels[pairs].astype(np.int32))
