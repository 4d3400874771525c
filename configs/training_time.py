"""E2 (PAPER_SPEC §7): interpolation spectra across training time for wrn_32 on CIFAR-10.

Command:   spectral-jax train --config=configs/training_time.py --workdir runs/e2_wrn32
           spectral-jax analyze --workdir runs/e2_wrn32 && spectral-jax report --workdir runs/e2_wrn32
Hardware:  one GPU or TPU host; CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      200 epochs x 195 steps of wrn_32 plus 11 analysed checkpoints x 2,900 lines x 64 points
           (not measured here: no accelerator).
Result:    analysis/interpolation/summary.csv per checkpoint: as test accuracy rises, between-class
           hf_power / max_grad should rise and within-class ones fall (the paper's claim E2).

ARG "cpu": the small CNN on digits for 20 epochs with a checkpoint every 2: about 30 s for train +
analyze on 2 CPU cores. ARG "smoke": seconds, for tests.
"""

from spectral_jax import config as config_lib


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = config_lib.base_config()
    c.dataset = "cifar10"
    c.model = "wrn_32"
    c.augment.flip_crop = True  # the reference baseline (PAPER_SPEC §5)
    c.augment.cutout = 16
    c.ckpt_keep = 1
    c.ckpt_every_epochs = 20  # permanent checkpoints for the time series
    c.analysis.pairs_per_class = 200  # 2,000 within-class lines
    c.analysis.pairs_per_class_pair = 20  # 900 between-class lines
    if arg in ("cpu", "smoke"):
        config_lib.shrink_to_digits(c)
        c.epochs, c.ckpt_every_epochs = (20, 2) if arg == "cpu" else (2, 1)
        c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 18, 8
    return c
