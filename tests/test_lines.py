"""Pair selection (docs/methods.md §2.3): within pairs share a label, between pairs do not."""

import numpy as np

from spectral_jax.spectral.lines import BETWEEN, WITHIN, between_class_pairs, select_lines, within_class_pairs


def test_within_pairs_are_disjoint_consecutive_and_capped():
    labels = np.array([0, 1, 0, 0, 1, 2, 0, 1, 0, 2])
    pairs = within_class_pairs(labels, pairs_per_class=10)
    # class 0 at [0, 2, 3, 6, 8] -> (0,2), (3,6); class 1 at [1, 4, 7] -> (1,4); class 2 at [5, 9] -> (5,9)
    np.testing.assert_array_equal(pairs, [[0, 2], [3, 6], [1, 4], [5, 9]])
    assert np.all(labels[pairs[:, 0]] == labels[pairs[:, 1]])
    assert len(np.unique(pairs)) == pairs.size  # every image used at most once
    np.testing.assert_array_equal(within_class_pairs(labels, 1), [[0, 2], [1, 4], [5, 9]])


def test_between_pairs_take_ith_images_of_each_class():
    labels = np.array([0, 1, 0, 0, 1, 2, 0, 1, 0, 2])
    pairs = between_class_pairs(labels, pairs_per_class_pair=2)
    np.testing.assert_array_equal(pairs, [[0, 1], [2, 4], [0, 5], [2, 9], [1, 5], [4, 9]])
    assert np.all(labels[pairs[:, 0]] != labels[pairs[:, 1]])
    # within one class pair, the images are distinct
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        sel = (labels[pairs[:, 0]] == a) & (labels[pairs[:, 1]] == b)
        assert len(np.unique(pairs[sel])) == pairs[sel].size


def test_select_lines_on_digits(digits):
    test = digits.split("test")
    lines = select_lines(test.labels, pairs_per_class=200, pairs_per_class_pair=3)
    within, between = lines.kind == WITHIN, lines.kind == BETWEEN
    assert within.sum() == sum(np.sum(test.labels == c) // 2 for c in range(10))  # capped by the data
    assert between.sum() == 45 * 3
    assert np.all(lines.labels[within, 0] == lines.labels[within, 1])
    assert np.all(lines.labels[between, 0] != lines.labels[between, 1])
    np.testing.assert_array_equal(lines.labels, test.labels[lines.pairs])
    assert len(np.unique(lines.pairs[within])) == lines.pairs[within].size
