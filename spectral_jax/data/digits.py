"""`digits`: scikit-learn's bundled handwritten digits (1797 images, 8x8x1, 10 classes).

The embedded default: it ships with scikit-learn, so it needs no network. Pixel values 0..16
are mapped to uint8 0..255 (round(v * 255 / 16)); the split is fixed (stratified, seed 0),
like the paper's fixed CIFAR split, whatever the run's seed.
"""

from __future__ import annotations

import numpy as np

from spectral_jax.data.dataset import Dataset, Split, channel_stats

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = np.round(raw.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # [1797, 8, 8, 1]
    labels = raw.target.astype(np.int32)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    # Keep file order inside each split (pair selection walks images in split order).
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    train = Split(images[idx_train], labels[idx_train])
    test = Split(images[idx_test], labels[idx_test])
    mean, std = channel_stats(train.images)
    return Dataset(name="digits", num_classes=10, mean=mean, std=std, splits={"train": train, "test": test})
