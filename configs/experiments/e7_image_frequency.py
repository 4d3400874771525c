"""E7 (docs/methods.md §7): noise fitting along image-frequency directions, at one function frequency.

Command:   spectral-jax sweep --config=configs/experiments/e7_image_frequency.py --root runs/e7
           spectral-jax report --root runs/e7
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      26 runs of 200 epochs of wrn_32 (13 arms, 2 seeds); not measured here (no accelerator).
Result:    runs/e7/report/noise_fitting_vs_direction.png: minimum noise fitting (amplitude 0.5, 0.038 cycles per
           unit) along the diagonal Fourier directions m = 0, 1, 2, 4, 8, 15, a random direction, the f and 1/f
           composites and the radial feature, then radial, f and 1/f again with image-frequency augmentation
           (probability 1), beside the spread of the data along each direction (docs/methods.md §2.4).

ARG "cpu":   cnn on digits (8x8: m = 0..3), 2 cycles per unit, 2 seeds, 20 epochs: 22 runs.
             2 CPU cores (shared): sweep 329 s + report 4 s, rerun 3.2 s.
ARG "smoke": 2 runs (fourier m = 1 and the f direction), 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "image_frequency"


def fourier_directions(ms):
    """Diagonal Fourier directions (m, m): spatial_frequency s gives m = floor(s / sqrt 2) (docs/methods.md §2.4)."""
    return hyper.product(hyper.fixed("noise.type", "fourier"), hyper.sweep("noise.spatial_frequency", [1.5 * m for m in ms]))


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = experiments.reference()
    c.noise.type = "radial"
    c.noise.frequency = 0.038  # one absolute frequency for every direction: the data's spread differs
    c.noise.amplitude = 0.5
    c.noise.min_after_epoch = 5
    experiments.shrink(c, arg, lines=(8, 2))
    if arg in ("cpu", "smoke"):
        c.noise.frequency = 2.0  # digits spread 0.06 (f) to 1.3 (fourier m = 1) along the directions
        c.noise.min_after_epoch = 2 if arg == "cpu" else 0
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    if arg == "smoke":
        return hyper.chainit(fourier_directions([1]), hyper.fixed("noise.type", "f"))
    directions = hyper.chainit(fourier_directions([0, 1, 2, 3] if arg == "cpu" else [0, 1, 2, 4, 8, 15]),
                               hyper.sweep("noise.type", ["random", "f", "1/f", "radial"]))
    augmented = hyper.product(hyper.sweep("noise.type", ["radial", "f", "1/f"]),
                              hyper.fixed("augment.image_freq.probability", 1.0))
    return hyper.product(hyper.chainit(directions, augmented), hyper.sweep("seed", [0, 1]))
