"""E5 (docs/methods.md §7): data augmentation arms: spectra and accuracy per arm.

Command:   spectral-jax sweep --config=configs/experiments/e5_augmentation.py --root runs/e5
           spectral-jax report --root runs/e5
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      12 runs of 200 epochs of wrn_32 (6 arms, 2 seeds); not measured here (no accelerator).
Result:    runs/e5/report/intervention.png: spectra at the last checkpoint and test accuracy per arm: none,
           flip + crop, flip + crop + cutout 16 (the reference baseline), + AutoAugment, + RandAugment, + mixup
           0.1 (policies chained before crop, docs/methods.md §5, §8 item 6); claim E5: arms that raise accuracy
           raise between-class and lower within-class frequency.

ARG "cpu":   on digits with cnn: none (the baseline), flip + crop, cutout 4, RandAugment, AutoAugment, mixup 0.1;
             2 seeds, 20 epochs: 12 runs. 2 CPU cores (shared): sweep 284 s + report 5 s, rerun 4.6 s.
ARG "smoke": 2 runs (none, cutout 4), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "intervention"
ARMS = (  # on top of the reference baseline flip + crop + cutout 16
    {"augment.flip_crop": False, "augment.cutout": 0},
    {"augment.cutout": 0},
    {},
    {"augment.policy": "autoaugment"},
    {"augment.policy": "randaugment"},
    {"augment.mixup_alpha": 0.1},
)
CPU_ARMS = (  # on top of no augmentation (8x8 digits: a 4-pixel cutout; flips do not preserve digits)
    {},
    {"augment.flip_crop": True},
    {"augment.cutout": 4},
    {"augment.policy": "randaugment"},
    {"augment.policy": "autoaugment"},
    {"augment.mixup_alpha": 0.1},
)


def get_config(arg: str = ""):
    return experiments.shrink(experiments.reference(), config_lib.config_arg(arg, __file__))


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return [dict(a) for a in CPU_ARMS[::2][:2]]
    arms = [dict(a) for a in (CPU_ARMS if arg == "cpu" else ARMS)]
    return hyper.product(arms, hyper.sweep("seed", [0, 1]))
