"""The demo: the small CNN on the embedded digits dataset, analysed at every epoch.

Command:   spectral-jax demo            (or: spectral-jax train --config=configs/demo.py --workdir W)
Hardware:  a laptop CPU (measured on 2 cores); no network, no accelerator.
Time:      about 10 s for train + analyze + report on 2 CPU cores (measured: 9 s of compute, 11 s
           wall clock with start-up).
Result:    final test accuracy 0.983 (seed 0); as accuracy rises, between-class max_grad rises
           0.54 -> 0.86 while within-class falls 0.081 -> 0.039.

ARG "smoke": a few-second version for tests (2 epochs, few lines).
"""

from spectral_jax import config as config_lib


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__, allowed=("smoke",))
    c = config_lib.base_config()
    c.dataset = "digits"
    c.model = "cnn"
    c.epochs = 8
    c.batch_size = 32
    c.lr = 0.05
    c.ckpt_keep = 0  # keep every epoch's checkpoint: the analysis follows training time
    c.ckpt_every_epochs = 1
    c.analysis.num_points = 64
    c.analysis.pairs_per_class = 16  # digits' test split has ~36 images per class
    c.analysis.pairs_per_class_pair = 4  # 45 class pairs -> 180 between-class lines
    if arg == "smoke":
        c.epochs = 2
        config_lib.shrink_analysis(c)
    return c
