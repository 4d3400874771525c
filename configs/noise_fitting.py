"""E1 (PAPER_SPEC §7): noise fitting of wrn_32 on CIFAR-10 with radial label noise (Fig. 1).

Command:   spectral-jax train --config=configs/noise_fitting.py --workdir runs/e1_radial_0.038
           (sweep the frequency with --config.noise.frequency=0.019 / 0.075 / 0.15 / 0.3, and run the
           control --config.noise.type=uniform at the same amplitude)
Hardware:  one GPU or TPU host; CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      200 epochs x 195 steps of wrn_32 at batch 256 (not measured here: no accelerator).
Result:    metrics.jsonl has noise_fitting (test) and train_noise_fitting every epoch; summary.json
           has min_noise_fitting and its epoch. The paper's Fig. 1 shows the dip near epoch 150.

ARG "cpu": the same measurement on the embedded digits with the small CNN, frequency in cycles per
std of the radial feature; about a minute on 2 CPU cores. ARG "smoke": a few seconds, for tests.
"""

from spectral_jax import config as config_lib


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = config_lib.base_config()
    c.dataset = "cifar10"
    c.model = "wrn_32"
    c.augment.flip_crop = True  # the reference baseline: flip + crop + cutout 16 (PAPER_SPEC §5)
    c.augment.cutout = 16
    c.noise.type = "radial"
    c.noise.frequency = 0.038  # cycles per unit of ||x|| - phi (the reference default)
    c.noise.amplitude = 0.5
    c.ckpt_every_epochs = 20
    if arg in ("cpu", "smoke"):
        config_lib.shrink_to_digits(c)
        c.epochs = 20 if arg == "cpu" else 2
        c.noise.frequency_unit = "data_std"
        c.noise.frequency = 2.0  # two cycles per std of the radial feature over the digits
        c.noise.min_after_epoch = 2
        c.ckpt_every_epochs = 5
    return c
