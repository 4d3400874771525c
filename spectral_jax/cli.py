"""`spectral-jax demo|train|analyze|report|sweep|config|prepare|models`: flags only; the work is
in library functions.

Every subcommand that builds a config takes `--config.KEY=VALUE` overrides. `train`, `demo` and
`config` read a config file (`--config=configs/FILE.py[:ARG]`, found from the working directory
or among the installed configs); `analyze`, `report`, and `train` without `--config`, read
WORKDIR/config.json. Any `UserError` (bad config, missing data, damaged file) ends in one line
`spectral-jax CMD: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time

import ml_collections

from spectral_jax import config as config_lib
from spectral_jax import parallel
from spectral_jax.errors import ConfigError, UserError
from spectral_jax.models import summary as model_summary
from spectral_jax.report import write_report, write_sweep_report
from spectral_jax.spectral.series import analyze_root, analyze_run, read_summary
from spectral_jax.sweep import Options, run_sweep
from spectral_jax.sweep.executors import EXECUTORS
from spectral_jax.train import member_runs, train_and_evaluate, train_runs

DEMO_CONFIG = "configs/demo.py"


def load_config(spec: str | None, overrides, workdir: str | None = None) -> ml_collections.ConfigDict:
    """The config file `spec` (or, without one, WORKDIR/config.json) with `overrides`, validated."""
    if spec:
        config = config_lib.load_config_file(spec)
    elif workdir:
        config = config_lib.load_run_config(workdir)
    else:
        config = config_lib.base_config()
    config_lib.apply_overrides(config, overrides)
    config_lib.validate(config)
    return config


def cmd_train(args, overrides) -> None:
    if not args.config and not config_lib.is_run_dir(args.workdir):
        raise ConfigError(f"{args.workdir} holds no run (no config.json) to resume: give --config=configs/FILE.py.")
    config = load_config(args.config, overrides, args.workdir)  # a bad config fails before joining the cluster
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    if config.ensemble > 1:  # members in WORKDIR/<key>_<value>/, trained in one program
        train_runs(*member_runs(config, args.workdir), restart_schedule=args.restart_schedule)
    else:
        train_and_evaluate(config, args.workdir, restart_schedule=args.restart_schedule)


def cmd_analyze(args, overrides) -> None:
    if (args.workdir is None) == (args.root is None):
        raise ConfigError("Give exactly one of --workdir W (one run) and --root R (every run under R).")
    if args.root is not None:
        load_config(None, overrides)  # bad keys and values fail here, before any run is read
        analyze_root(args.root, overrides, steps=args.steps)
    else:
        analyze_run(args.workdir, load_config(None, overrides, args.workdir), steps=args.steps)


def cmd_report(args, overrides) -> None:
    if args.root:
        if overrides:
            raise ConfigError("report --root takes no --config overrides: it only reads the runs' results.")
        write_sweep_report(args.root)
        return
    if overrides:
        load_config(None, overrides, args.workdir)  # validates; the report itself only reads results
    write_report(args.workdir)


def cmd_sweep(args, overrides) -> int:
    opts = Options(executor=args.executor, max_parallel=args.max_parallel, group_size=args.group_size,
                   time_min=args.time, partition=args.partition, gpus_per_node=args.gpus_per_node,
                   nodes=args.nodes, tasks_per_node=args.tasks_per_node, cpus_per_task=args.cpus_per_task,
                   mem_gb=args.mem_gb, array_parallelism=args.array_parallelism, setup=tuple(args.setup),
                   slurm_args=tuple(args.slurm_arg))
    return run_sweep(args.config, args.root, opts, overrides=overrides, dry_run=args.dry_run)


def cmd_config(args, overrides) -> None:
    print(config_lib.describe(load_config(args.config, overrides, args.workdir)))


def parse_shape(text: str) -> tuple[int, ...]:
    """`"32,32,3"` -> (32, 32, 3): an image's H,W,C."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input_shape must be H,W,C with positive integers (like 32,32,3), got {text!r}.")
    return shape


def cmd_models(args, overrides) -> None:
    config = load_config(None, overrides)  # e.g. --config.wrn.depth=16 for `wrn`
    if args.num_classes < 1:
        raise ConfigError(f"--num_classes must be a positive integer, got {args.num_classes}.")
    names = None if args.model is None else [args.model]
    rows = model_summary.model_rows(config, parse_shape(args.input_shape), args.num_classes, names)
    print(model_summary.format_rows(rows))


def cmd_demo(args, overrides) -> None:
    config = load_config(args.config, overrides)
    t0 = time.perf_counter()
    train_and_evaluate(config, args.workdir)
    analyze_run(args.workdir, config)
    write_report(args.workdir)
    print()
    print(format_table(read_summary(args.workdir)))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; results in {args.workdir}/ "
          f"(report/hf_vs_step.png, report/spectra.png, analysis/interpolation/summary.csv)")


def cmd_prepare(args, overrides) -> None:
    from spectral_jax.data.prepare import prepare  # imports tensorflow_datasets' builders: only here

    if overrides:
        raise ConfigError("prepare takes no --config overrides; use: spectral-jax prepare NAME [--data_dir D].")
    prepare(args.name, args.data_dir)


def format_table(rows: list[dict]) -> str:
    """One line per analysed step: test accuracy, hf_power and max_grad within / between."""
    by_step: dict[float, dict] = {}
    for r in rows:
        by_step.setdefault(r["step"], {"test_acc": r["test_acc"]})[r["kind"]] = r
    head = f"{'step':>6} {'test_acc':>8} {'hf_power within':>16} {'hf_power between':>17} " \
           f"{'max_grad within':>16} {'max_grad between':>17}"
    lines = [head, "-" * len(head)]
    for step, r in sorted(by_step.items()):
        w, b = r.get("within", {}), r.get("between", {})
        lines.append(f"{int(step):>6} {r['test_acc']:>8.4f} {w.get('hf_power_mean', float('nan')):>16.3e} "
                     f"{b.get('hf_power_mean', float('nan')):>17.3e} {w.get('max_grad_mean', float('nan')):>16.4f} "
                     f"{b.get('max_grad_mean', float('nan')):>17.4f}")
    return "\n".join(lines)


def overrides_help(groups: tuple[str, ...] = ()) -> str:
    """The epilog of subcommands that take overrides: the syntax, and the keys."""
    keys = [k for k, _, _ in config_lib.FIELDS if not groups or k.split(".")[0] in groups or "." not in k]
    listing = textwrap.fill(", ".join(keys), width=100, initial_indent="  ", subsequent_indent="  ")
    return ("Override any config key with --config.KEY=VALUE (typed like the key's default; nested keys are\n"
            "dotted: --config.epochs=20 --config.noise.amplitude=0.5 --config.analysis.lines=random).\n"
            "Unknown keys and bad values are an error before any compute. Keys:\n" + listing +
            "\n`spectral-jax config [--config=FILE | --workdir W]` prints every key with its value and help.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectral-jax",
        description="Measure the spectral bias of image classifiers. Subcommands that build a config take "
                    "--config.KEY=VALUE overrides (e.g. --config.epochs=5 --config.analysis.num_points=32).")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("demo", help="train the small CNN on digits, analyse every checkpoint, write the report",
                       epilog=overrides_help(), formatter_class=raw)
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--config", default=DEMO_CONFIG, help="config file[:ARG] (default %(default)s)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a config into a run directory (resumes or extends a run)",
                       epilog=overrides_help(), formatter_class=raw)
    p.add_argument("--config", help="configs/FILE.py[:ARG]; without it, the run in --workdir is resumed from "
                                    "its config.json (with --config.epochs=N it is extended)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--restart_schedule", action="store_true",
                   help="when extending a run, start a fresh cosine cycle at the resumed step (default: one "
                        "cosine over the whole new duration)")
    g = p.add_argument_group("multi-process (otherwise taken from the environment: SLURM, TPU, ...)")
    g.add_argument("--coordinator", help="HOST:PORT of process 0")
    g.add_argument("--num_processes", type=int)
    g.add_argument("--process_id", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("analyze", help="interpolation spectra at the checkpoints of a run (or of every run under a root)",
                       description="Each analysis setting writes its own folder W/analysis/<name>/ (the default "
                                   "settings: interpolation/); steps already analysed with the same settings are "
                                   "skipped, and a killed analysis resumes. Line kinds: --config.analysis.lines="
                                   "pairs|random|fourier|f|1/f|gradient|plane; see docs/analysis.md.",
                       epilog=overrides_help(("analysis",)), formatter_class=raw)
    p.add_argument("--workdir", help="one run directory")
    p.add_argument("--root", help="every run directory under this folder; runs of one model and data share a program")
    p.add_argument("--steps", default="all", help="all (default), last, or checkpoint steps like 100,200")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("report", help="figures and summary.json from a run's analysis, or (--root) results.csv "
                                      "and the experiment's figure from a sweep")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--workdir", help="a run directory")
    where.add_argument("--root", help="a sweep root (spectral-jax sweep --root): writes ROOT/results.csv, "
                                      "ROOT/report/*.png")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run an experiment's sweep (get_sweep): skip finished runs, resume "
                                     "interrupted ones, retry failed ones; end with a table of run states",
                       epilog="Overrides (--config.KEY=VALUE) apply to every run of the sweep.\n" + overrides_help(),
                       formatter_class=raw)
    p.add_argument("--config", required=True, help="configs/experiments/FILE.py[:ARG] (a file with get_sweep)")
    p.add_argument("--root", required=True, help="the sweep's folder: ROOT/<run name>-<hash>/ per run")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: processes on this machine (default); slurm: job arrays; debug: in this process")
    p.add_argument("--dry_run", action="store_true", help="print the runs and the submission; run nothing")
    p.add_argument("--max_parallel", type=int, default=0,
                   help="local: jobs at once (default: one per GPU; without GPUs one per 8 CPU cores, at least 1)")
    p.add_argument("--group_size", type=int, default=1,
                   help="runs of a small model that differ only in seed/lr/weight_decay/label_smoothing train as one "
                        "ensemble (one program, jax.vmap), up to this many per job")
    p.add_argument("--time", type=int, default=0, help="time limit per job in minutes (default: local a week, "
                                                       "slurm 24 h)")
    g = p.add_argument_group("slurm")
    g.add_argument("--partition", default="")
    g.add_argument("--gpus_per_node", type=int, default=0)
    g.add_argument("--nodes", type=int, default=1, help="nodes per run (a multi-node run uses jax.distributed)")
    g.add_argument("--tasks_per_node", type=int, default=1, help="processes per node of a run")
    g.add_argument("--cpus_per_task", type=int, default=0)
    g.add_argument("--mem_gb", type=int, default=0)
    g.add_argument("--array_parallelism", type=int, default=64, help="array tasks running at once")
    g.add_argument("--setup", action="append", default=[],
                   help="a shell line run first in every job, e.g. 'source ~/venv/bin/activate' (repeatable)")
    g.add_argument("--slurm_arg", action="append", default=[], help="any other sbatch flag as KEY=VALUE (repeatable)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("config", help="print a resolved config: every key, its value and one line of help",
                       epilog=overrides_help(), formatter_class=raw)
    p.add_argument("--config", help="configs/FILE.py[:ARG] (default: the base config)")
    p.add_argument("--workdir", help="a run directory: its config.json")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("models", help="each registry model's trainable parameters and forward GFLOPs per image")
    p.add_argument("--input_shape", default="32,32,3", help="H,W,C of one image (default %(default)s)")
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--model", default=None, help="just this model (default: all)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("prepare", help="build a tfds dataset (cifar10, cifar10_1, cifar100, svhn_cropped, "
                                       "imagenet2012) in array_record format; needs the [prepare] extra and network")
    p.add_argument("name")
    p.add_argument("--data_dir", default="", help="where to build it (default: tfds' own, ~/tensorflow_datasets)")
    p.set_defaults(func=cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = config_lib.parse_overrides(rest)
        status = args.func(args, overrides)
    except (UserError, FileNotFoundError) as e:
        print(f"spectral-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
