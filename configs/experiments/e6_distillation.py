"""E6 (docs/methods.md §7): self-distillation: a student trained on its teacher's soft labels.

Command:   spectral-jax sweep --config=configs/experiments/e6_distillation.py --root runs/e6
           spectral-jax report --root runs/e6
Hardware:  GPUs (one run per GPU); CIFAR-10 prepared once with `spectral-jax prepare cifar10`.
Time:      4 runs of 200 epochs of wrn_32: 2 teachers (seeds 0, 1), then one student each (the students wait
           for their teacher: a second stage, `--dependency=afterany` on SLURM); not measured here.
Result:    runs/e6/report/intervention.png: spectra at the last checkpoint and test accuracy of teachers
           ("baseline") and students ("teacher_workdir=@run", distillation_alpha 0: the teacher's soft labels
           only, docs/methods.md §6); claim E6: a student that beats its teacher is lower-frequency within classes
           and higher-frequency between them.

ARG "cpu":   the same with cnn on digits, 20 epochs: 4 runs. 2 CPU cores (shared): sweep MEASURED_E6.
ARG "smoke": 1 teacher and its student, 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.sweep import hyper

FIGURE = "intervention"


def get_config(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    c = config_lib.base_config()
    c.dataset = "cifar10"
    c.model = "wrn_32"
    c.augment.flip_crop = True  # the reference baseline (docs/methods.md §5)
    c.augment.cutout = 16
    c.distillation_alpha = 0.0  # the teacher's soft labels only (the reference default)
    c.ckpt_keep = 1  # spectra at the last checkpoint
    c.ckpt_every_epochs = c.epochs
    c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 200, 20
    if arg in ("cpu", "smoke"):
        config_lib.shrink_to_digits(c)
        c.epochs = c.ckpt_every_epochs = 20 if arg == "cpu" else 2
        c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 18, 8
        if arg == "smoke":
            config_lib.shrink_analysis(c)
    return c


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    teachers = hyper.sweep("seed", [0] if arg == "smoke" else [0, 1])
    students = [{**t, "teacher_workdir": hyper.RunRef(t)} for t in teachers]
    return hyper.chainit(teachers, students)
