"""E8 (docs/methods.md §7, §2.5): within-class interpolation frequency against class diversity.

Command:   spectral-jax sweep --config=configs/experiments/e8_class_diversity.py --root runs/e8
           spectral-jax report --root runs/e8
Hardware:  GPUs with ImageNet prepared (`spectral-jax prepare imagenet2012`, streamed from disk at 64x64).
Time:      2 runs of 30 epochs (resnet18 and wrn_32 at 64x64), 20 within-class lines per class; not measured
           here (no ImageNet, no accelerator).
Result:    runs/e8/report/hf_vs_class_diversity.png: per class, within-class hf_power against the class's
           diversity (mean pairwise pixel and feature distance), with Spearman's rho per model; claim E8:
           rho > 0. The figure reads each run's analysis/class_diversity/class_diversity.csv, which the
           analysis writes for pair lines (analysis.class_diversity, on by default).

ARG "cpu":   cnn and mlp on digits, 2 seeds, 20 epochs, 18 within-class lines per class: 4 runs.
             2 CPU cores (shared): sweep 70 s + report 4 s, rerun 4.4 s; Spearman's rho of within-class
             hf_power with pixel diversity 0.39 +- 0.38 (cnn) and 0.02 +- 0.01 (mlp): positive, not significant.
ARG "smoke": 2 runs (cnn, mlp), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "class_diversity"


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = experiments.reference("resnet18")
    c.dataset, c.image_size, c.augment.cutout = "imagenet2012", 64, 0
    c.epochs = c.ckpt_every_epochs = 30
    c.analysis.pairs_per_class = 20  # 20,000 within-class lines over the 1,000 classes
    experiments.shrink(c, arg)
    c.image_size = 0 if arg else c.image_size
    c.analysis.pairs_per_class_pair = 0  # no between-class lines: the claim is about classes one by one
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return hyper.sweep("model", ["cnn", "mlp"])
    models = ["cnn", "mlp"] if arg == "cpu" else ["resnet18", "wrn_32"]
    return hyper.product(hyper.sweep("model", models), hyper.sweep("seed", [0, 1] if arg == "cpu" else [0]))
