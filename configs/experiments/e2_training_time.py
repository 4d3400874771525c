"""E2 (docs/methods.md §7): interpolation spectra across training time, per model.

Command:   spectral-jax sweep --config=configs/experiments/e2_training_time.py --root runs/e2
           spectral-jax report --root runs/e2
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      6 runs of 200 epochs (wrn_32, wrn_160, shake_shake_32; 2 seeds), each analysed at 11 permanent
           checkpoints x 2,900 lines; not measured here (no accelerator).
Result:    runs/e2/report/hf_vs_epoch.png: within/between-class hf_power and max_grad and test accuracy against
           epoch; the paper's claim E2 is that between-class frequency rises and within-class frequency falls
           as test accuracy rises.

ARG "cpu":   cnn and mlp on digits, 2 seeds, 20 epochs analysed every 2: 4 runs.
             2 CPU cores (shared): sweep MEASURED_E2.
ARG "smoke": 2 runs (2 seeds), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.sweep import hyper

FIGURE = "training_time"


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = config_lib.base_config()
    c.dataset = "cifar10"
    c.model = "wrn_32"
    c.augment.flip_crop = True  # the reference baseline (docs/methods.md §5)
    c.augment.cutout = 16
    c.ckpt_keep = 1
    c.ckpt_every_epochs = 20  # permanent checkpoints for the time series
    c.analysis.pairs_per_class = 200  # 2,000 within-class lines
    c.analysis.pairs_per_class_pair = 20  # 900 between-class lines
    if arg in ("cpu", "smoke"):
        config_lib.shrink_to_digits(c)
        c.epochs, c.ckpt_every_epochs = (20, 2) if arg == "cpu" else (2, 1)
        c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 18, 8
        if arg == "smoke":
            config_lib.shrink_analysis(c)
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    seeds = hyper.sweep("seed", [0, 1])
    if arg == "smoke":
        return seeds
    models = ["cnn", "mlp"] if arg == "cpu" else ["wrn_32", "wrn_160", "shake_shake_32"]
    return hyper.product(hyper.sweep("model", models), seeds)
