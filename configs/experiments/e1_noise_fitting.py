"""E1 (docs/methods.md §7): noise fitting against frequency, per model and noise type, with the uniform control.

Command:   spectral-jax sweep --config=configs/experiments/e1_noise_fitting.py --root runs/e1
           spectral-jax report --root runs/e1
Hardware:  GPUs (one run per GPU: --executor slurm --gpus_per_node 1, or --executor local on a GPU node);
           CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      60 runs of 200 epochs (wrn_32 and wrn_160, 2 seeds); not measured here (no accelerator).
Result:    runs/e1/report/noise_fitting_vs_frequency.png: minimum noise fitting against frequency for radial
           and random-direction noise (amplitude 0.5), with each run's oracle and the uniform control; the
           paper's claim E1.2 is that it falls as the frequency rises.

ARG "cpu":   the same design on the embedded digits: cnn and mlp, radial and random noise at 0.5, 1, 2, 4, 8
             cycles per std of the noise feature, plus the uniform control: 22 runs of 20 epochs.
             2 CPU cores: sweep 237 s + report 2.7 s, rerun 2.4 s on an idle machine (317 s + 3 s,
             rerun 2.8 s at a load average of 3-4);
             the test-set minimum noise fitting is highest at 0.5 cycles per std, not monotone above.
ARG "smoke": 2 runs (radial at 2 cycles per std and the uniform control), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "noise_fitting"
FREQUENCIES = (0.01, 0.019, 0.038, 0.075, 0.15, 0.3, 0.5)  # cycles per unit (docs/methods.md §2.1)
CPU_FREQUENCIES = (0.5, 1.0, 2.0, 4.0, 8.0)  # cycles per std of g(x) over the digits


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = experiments.reference()
    c.noise.type = "radial"
    c.noise.frequency = 0.038  # cycles per unit of ||x|| - phi (the reference default)
    c.noise.amplitude = 0.5
    c.noise.min_after_epoch = 5
    experiments.shrink(c, arg, lines=(8, 2))
    if arg in ("cpu", "smoke"):
        c.noise.frequency_unit = "data_std"
        c.noise.frequency = 2.0
        c.noise.min_after_epoch = 2 if arg == "cpu" else 0
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return hyper.sweep("noise.type", ["radial", "uniform"])
    models = ["cnn", "mlp"] if arg == "cpu" else ["wrn_32", "wrn_160"]
    frequencies = CPU_FREQUENCIES if arg == "cpu" else FREQUENCIES
    waves = hyper.product(hyper.sweep("noise.type", ["radial", "random"]), hyper.sweep("noise.frequency", frequencies))
    runs = hyper.product(hyper.sweep("model", models), hyper.chainit(hyper.fixed("noise.type", "uniform"), waves))
    return runs if arg == "cpu" else hyper.product(runs, hyper.sweep("seed", [0, 1]))
