"""E9 (docs/methods.md §7): regularization: weight decay, learning rate and batch norm, one at a time.

Command:   spectral-jax sweep --config=configs/experiments/e9_regularization.py --root runs/e9
           spectral-jax report --root runs/e9
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      16 runs of 200 epochs of wrn_32 (8 arms around the reference recipe, 2 seeds); not measured here.
Result:    runs/e9/report/intervention.png: spectra at the last checkpoint and test accuracy per arm: weight decay
           0, 5e-5, 5e-4 (the baseline), 5e-3; learning rate 0.01, 0.03, 0.3; no batch norm (a learnable
           scalar); the v1 claim is that stronger regularization postpones high frequencies.

ARG "cpu":   cnn on digits around lr 0.05: weight decay 0, 5e-5, 5e-3, learning rate 0.01, 0.2, no batch norm,
             and the baseline; 2 seeds, 20 epochs: 14 runs. 2 CPU cores (shared): sweep 280 s + report 5 s, rerun 4.5 s.
ARG "smoke": 2 runs (the baseline and weight decay 0), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "intervention"


def get_config(arg: str = ""):
    return experiments.shrink(experiments.reference(), config_lib.config_arg(arg, __file__))


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return hyper.sweep("weight_decay", [5e-4, 0.0])
    lrs = [0.01, 0.05, 0.2] if arg == "cpu" else [0.01, 0.03, 0.1, 0.3]
    arms = hyper.chainit(hyper.sweep("weight_decay", [0.0, 5e-5, 5e-4, 5e-3]), hyper.sweep("lr", lrs),
                         hyper.sweep("use_batchnorm", [True, False]))  # the baseline appears once
    return hyper.product(arms, hyper.sweep("seed", [0, 1]))
