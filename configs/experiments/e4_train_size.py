"""E4 (docs/methods.md §7): the number of training examples, with the number of epochs fixed.

Command:   spectral-jax sweep --config=configs/experiments/e4_train_size.py --root runs/e4
           spectral-jax report --root runs/e4
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      8 runs of 200 epochs of wrn_32 (train_size 5k, 10k, 25k, 50k; 2 seeds); not measured here.
Result:    runs/e4/report/intervention.png: spectra at the last checkpoint (test-set lines in every run) and
           test accuracy per training-set size; claim E4: more data, higher accuracy, higher between-class and
           lower within-class frequency.

ARG "cpu":   on digits (1,437 training images): 180, 360, 720 and all, 2 seeds, 20 epochs of cnn: 8 runs.
             2 CPU cores (shared): sweep 158 s + report 4 s, rerun 4.3 s; more images: higher accuracy
             and between-class frequency, lower within-class max_grad and hf_power.
ARG "smoke": 2 runs (180 and all), 2 epochs, for tests.
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
        return hyper.sweep("train_size", [180, 0])
    sizes = [180, 360, 720, 0] if arg == "cpu" else [5000, 10000, 25000, 0]  # 0 = the whole training split
    return hyper.product(hyper.sweep("train_size", sizes), hyper.sweep("seed", [0, 1]))
