"""CIFAR-10 with the small CNN and the reference augmentation: flip + pad-4 crop + cutout 16
(docs/methods.md §5, the reference code's default), recipe of §4 (Nesterov SGD, cosine, wd 5e-4).

Command:   spectral-jax prepare cifar10          (once; needs the [prepare] extra and network)
           spectral-jax train --config=configs/cifar10.py --workdir runs/cifar10
           (add --config.data_dir=D if it was prepared with --data_dir D)
Hardware:  one GPU (about 1 GB of device memory: the training split lives on it as uint8).
Time:      not measured yet (CIFAR-10 was not available where this config was written); loading
           the 60k images takes ~10 s on the host, then 30 epochs of 195 steps.
Result:    not measured yet.

ARG "cpu":   a laptop-CPU version: 5,000 training images (the rest become `val`), 5 epochs,
             fewer analysis lines. Measured on 2 CPU cores with CIFAR-shaped stand-in data (random
             50k + 10k 32x32x3 images through --config.dataset=npz:PATH; CIFAR-10 itself was not
             available): 47 s for train (about 5 s and 1,140 images/s per epoch) + analyze + report.
ARG "smoke": a seconds-long run for checking a setup: 256 images, 1 epoch.
"""

from spectral_jax import config as config_lib


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = config_lib.base_config()
    c.dataset = "cifar10"
    c.model = "cnn"
    c.epochs = 30
    c.batch_size = 256
    c.augment.flip_crop = True
    c.augment.cutout = 16
    c.ckpt_every_epochs = 5
    if arg == "cpu":
        c.train_size = 5000
        c.epochs = 5
        c.batch_size = 128
        c.analysis.pairs_per_class = 20
        c.analysis.pairs_per_class_pair = 4
    elif arg == "smoke":
        c.train_size = 256
        c.epochs = 1
        c.batch_size = 64
        config_lib.shrink_analysis(c)
    return c
