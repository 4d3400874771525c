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

ARG "cpu":   the same with cnn on digits, 20 epochs: 4 runs. 2 CPU cores (shared): sweep 85 s + report 4 s, rerun 4.1 s.
ARG "smoke": 1 teacher and its student, 2 epochs, for tests.
"""

from spectral_jax import config as config_lib
from spectral_jax.configs import experiments
from spectral_jax.sweep import hyper

FIGURE = "intervention"


def get_config(arg: str = ""):
    return experiments.shrink(experiments.reference(), config_lib.config_arg(arg, __file__))


def get_sweep(arg: str = ""):
    arg = config_lib.config_arg(arg, __file__)
    teachers = hyper.sweep("seed", [0] if arg == "smoke" else [0, 1])
    students = [{**t, "teacher_workdir": hyper.RunRef(t)} for t in teachers]
    return hyper.chainit(teachers, students)
