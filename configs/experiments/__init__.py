"""The paper's experiments E1-E9 (docs/methods.md §7), one file each: `get_config(arg)` (full scale
by default, `:cpu` for a laptop, `:smoke` for tests), `get_sweep(arg)` (the runs) and `FIGURE` (the
figure `spectral-jax report --root R` draws), run with
`spectral-jax sweep --config=configs/experiments/FILE.py[:cpu] --root R`.

This module holds what the experiments share (imported as `spectral_jax.configs.experiments`).
"""

from spectral_jax import config as config_lib

CPU_EPOCHS = 20


def reference(model: str = "wrn_32"):
    """The paper's setting: `model` on CIFAR-10 with the recipe of docs/methods.md §4 and the
    reference augmentation flip + crop + cutout 16 (§5); 200 within- and 20 between-class lines
    per class (pair), at the last checkpoint only."""
    c = config_lib.base_config()
    c.dataset, c.model = "cifar10", model
    c.augment.flip_crop, c.augment.cutout = True, 16
    c.ckpt_keep, c.ckpt_every_epochs = 1, c.epochs
    c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 200, 20
    return c


def shrink(c, arg: str, lines: tuple[int, int] = (18, 8)):
    """`:cpu` / `:smoke` (arg '' leaves `c` alone): the small CNN on the embedded digits (no
    augmentation, batch 32, lr 0.05), 20 epochs (smoke: 2) with the last checkpoint kept, and
    `lines` = (pairs per class, pairs per class pair) for the analysis (smoke: a few)."""
    if arg not in config_lib.CONFIG_ARGS:
        return c
    config_lib.shrink_to_digits(c)
    c.epochs = c.ckpt_every_epochs = CPU_EPOCHS if arg == "cpu" else 2
    c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = lines
    if arg == "smoke":
        config_lib.shrink_analysis(c)
    return c
