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
             2 CPU cores (shared): sweep 91 s + report 5 s, rerun 4.4 s; between-class frequency rises
             with accuracy, within-class stays flat.
ARG "smoke": 2 runs (2 seeds), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "training_time"


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = experiments.shrink(experiments.reference(), arg)
    # Permanent checkpoints for the time series (the latest is kept too).
    c.ckpt_every_epochs = {"": 20, "cpu": 2, "smoke": 1}[arg]
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    seeds = hyper.sweep("seed", [0, 1])
    if arg == "smoke":
        return seeds
    models = ["cnn", "mlp"] if arg == "cpu" else ["wrn_32", "wrn_160", "shake_shake_32"]
    return hyper.product(hyper.sweep("model", models), seeds)
