"""E3 (docs/methods.md §7): architecture and width: spectra and accuracy per model.

Command:   spectral-jax sweep --config=configs/experiments/e3_architecture.py --root runs/e3
           spectral-jax report --root runs/e3
Hardware:  GPUs (one run per GPU; pyramid_net and the wide models want a large one); CIFAR-10 prepared.
Time:      12 runs of 200 epochs (wrn_32, wrn_160, shake_shake_32/96/112, pyramid_net at batch 64; 2 seeds);
           not measured here (no accelerator).
Result:    runs/e3/report/intervention.png: within/between hf_power and max_grad at the last checkpoint and test
           accuracy per model; claim E3.2: more accurate models are higher-frequency between classes and
           lower-frequency within them.

ARG "cpu":   on digits: mlp, cnn, and WRN-10-1 / WRN-10-2 (width), 2 seeds, 20 epochs: 8 runs.
             2 CPU cores (shared): sweep 179 s + report 4 s, rerun 4.4 s; the most accurate (cnn) is
             the lowest-frequency within and between classes.
ARG "smoke": 2 runs (mlp, cnn), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "intervention"


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = experiments.shrink(experiments.reference(), arg)
    c.wrn.depth = 10 if arg else c.wrn.depth  # WRN-10-k on digits: one block per stage
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return hyper.sweep("model", ["mlp", "cnn"])
    seeds = hyper.sweep("seed", [0, 1])
    if arg == "cpu":
        models = hyper.chainit(hyper.sweep("model", ["mlp", "cnn"]),
                               hyper.product(hyper.fixed("model", "wrn"), hyper.sweep("wrn.widen_factor", [1, 2])))
        return hyper.product(models, seeds)
    models = hyper.chainit(
        hyper.sweep("model", ["wrn_32", "wrn_160", "shake_shake_32", "shake_shake_96", "shake_shake_112"]),
        hyper.product(hyper.fixed("model", "pyramid_net"), hyper.fixed("batch_size", 64)))  # docs/methods.md §4
    return hyper.product(models, seeds)
