"""The results of a sweep, gathered: one row per run from the files each run wrote.

Reads ROOT/sweep.json (written by `spectral-jax sweep`: the experiment, its swept keys and its
runs) and, per run directory, config.json, summary.json, metrics.jsonl,
analysis/interpolation/summary.csv and analysis/class_diversity/class_diversity.csv when
present; writes ROOT/results.csv (columns RESULT_COLUMNS, the swept keys after `state`).
Nothing is recomputed: a run that has not finished appears with state `incomplete` and the
columns it has. The figures drawn from these rows are in report/experiments.py.
"""

from __future__ import annotations

import csv
import io as _io
import math
from pathlib import Path

import numpy as np

from spectral_jax import config as config_lib
from spectral_jax import io
from spectral_jax.data.noise import minimum_over_epochs
from spectral_jax.errors import DamagedFile, UserError
from spectral_jax.spectral import series
from spectral_jax.spectral.diversity import spearman
from spectral_jax.spectral.results import standard_error

SWEEP_FILE = "sweep.json"
CLASS_DIVERSITY_CSV = Path("analysis") / "class_diversity" / "class_diversity.csv"
CLASS_DIVERSITY_COLUMNS = ("step", "class", "n_lines", "hf_power_mean", "max_grad_mean", "diversity_pixel",
                           "diversity_feature")

TRAINING_COLUMNS = ("final_test_acc", "final_train_acc", "final_test_loss", "final_train_loss", "epochs_done",
                    "last_step", "total_steps", "stopped_early", "train_seconds", "final_extra_acc",
                    "final_effective_robustness")
NOISE_COLUMNS = ("noise_feature_std", "noise_frequency_absolute", "min_noise_fitting", "min_noise_fitting_epoch",
                 "min_noise_fitting_after_burn_in", "min_noise_fitting_after_burn_in_epoch", "min_train_noise_fitting",
                 "min_train_noise_fitting_epoch", "final_noise_fitting", "final_train_noise_fitting",
                 "oracle_noise_fitting", "oracle_uniform_noise_fitting", "train_oracle_noise_fitting",
                 "train_oracle_uniform_noise_fitting", "max_epsilon")
LINE_STATS = ("hf_power", "max_grad", "hf_fraction", "r_end")
LINE_COLUMNS = ("analysed_step",) + tuple(
    f"{stat}_{kind}{sem}" for kind in ("within", "between") for stat in LINE_STATS
    for sem in (("", "_sem") if stat in ("hf_power", "max_grad") else ("",)))
DIVERSITY_COLUMNS = ("diversity_spearman_pixel", "diversity_spearman_feature")
# Config keys every results row carries (the figures read them), after the sweep's swept keys.
DESIGN_KEYS = ("model", "seed", "noise.type", "noise.frequency", "noise.frequency_unit", "noise.amplitude",
               "noise.spatial_frequency", "augment.image_freq.probability")
# results.csv: these, with the swept keys and DESIGN_KEYS inserted after `state`.
RESULT_COLUMNS = ("run", "label", "state") + TRAINING_COLUMNS + NOISE_COLUMNS + LINE_COLUMNS + DIVERSITY_COLUMNS


def read_sweep(root: str | Path) -> dict:
    """ROOT/sweep.json, or a UserError saying how to make one."""
    path = Path(root) / SWEEP_FILE
    if not path.exists():
        raise UserError(f"{path} not found: is {root} a sweep root? Run `spectral-jax sweep --config=... --root {root}`.")
    return io.read_json(path)


def gather(root: str | Path) -> tuple[dict, list[dict]]:
    """-> (sweep.json, one results row per run, in the sweep's order)."""
    root = Path(root)
    sweep = read_sweep(root)
    return sweep, [run_row(root / run["name"], run, sweep["swept_keys"]) for run in sweep["runs"]]


def run_row(workdir: Path, run: dict, swept_keys: list[str]) -> dict:
    """The results row of one run directory (missing files leave their columns empty)."""
    row = {"run": run["name"], "label": run["label"]}
    config = config_lib.load_run_config(workdir) if (workdir / "config.json").exists() else None
    for key in config_columns(swept_keys):
        row[key] = config_value(config, key) if config is not None else run["overrides"].get(key)
    summary = io.read_json(workdir / "summary.json") if (workdir / "summary.json").exists() else {}
    finished = summary and (summary.get("last_step") == summary.get("total_steps") or summary.get("stopped_early"))
    row["state"] = "done" if finished and (workdir / "report" / "summary.json").exists() else "incomplete"
    row.update({k: summary[k] for k in TRAINING_COLUMNS + NOISE_COLUMNS if k in summary})
    records = io.read_jsonl(workdir / "metrics.jsonl")
    if config is not None and records and "train_noise_fitting" in records[-1]:
        value, epoch = minimum_over_epochs(records, "train_noise_fitting", after_epoch=config.noise.min_after_epoch)
        row.update(min_train_noise_fitting=value, min_train_noise_fitting_epoch=epoch)
    row.update(_line_columns(workdir))
    row.update(_diversity_columns(workdir))
    return row


def _line_columns(workdir: Path) -> dict:
    """The interpolation statistics at the last analysed step (summary.csv)."""
    try:
        rows = series.read_summary(workdir)
    except FileNotFoundError:
        return {}
    if not rows:
        return {}
    last = max(r["step"] for r in rows)
    out = {"analysed_step": int(last)}
    for r in rows:
        if r["step"] == last:
            for stat in LINE_STATS:
                out[f"{stat}_{r['kind']}"] = r[f"{stat}_mean"]
                if f"{stat}_sem" in r:
                    out[f"{stat}_{r['kind']}_sem"] = r[f"{stat}_sem"]
    return out


def read_class_diversity(workdir: str | Path) -> list[dict]:
    """analysis/class_diversity/class_diversity.csv as numeric rows ([] when absent)."""
    path = Path(workdir) / CLASS_DIVERSITY_CSV
    if not path.exists():
        return []
    return io.read_csv(path, f"Rerun spectral-jax analyze --workdir {workdir}: it writes the table again.",
                       required=CLASS_DIVERSITY_COLUMNS)


def last_step_rows(rows: list[dict]) -> list[dict]:
    last = max(r["step"] for r in rows)
    return [r for r in rows if r["step"] == last]


def _diversity_columns(workdir: Path) -> dict:
    """Spearman correlation over classes of within-class hf_power with class diversity (last step)."""
    rows = read_class_diversity(workdir)
    if not rows:
        return {}
    rows = last_step_rows(rows)
    hf = [r["hf_power_mean"] for r in rows]
    return {f"diversity_spearman_{kind}": spearman(hf, [r[f"diversity_{kind}"] for r in rows])
            for kind in ("pixel", "feature")}


def mean_sem(values) -> tuple[float, float, int]:
    """(mean, standard error of the mean, count) over the finite values; sem 0 for one value."""
    v = np.asarray([x for x in values if x is not None and isinstance(x, (int, float)) and math.isfinite(x)],
                   np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(standard_error(v)), len(v)


def config_columns(swept_keys: list[str]) -> list[str]:
    """The config keys of results.csv: the swept ones, then DESIGN_KEYS."""
    return list(dict.fromkeys([*swept_keys, *DESIGN_KEYS]))


def write_results_csv(root: str | Path, sweep: dict, rows: list[dict]) -> Path:
    columns = list(RESULT_COLUMNS[:3]) + config_columns(sweep["swept_keys"]) + list(RESULT_COLUMNS[3:])
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(root) / "results.csv"
    io.write_text(path, buf.getvalue())
    return path


def read_results(root: str | Path) -> list[dict]:
    """ROOT/results.csv with numbers as floats (empty cells as None)."""
    path = Path(root) / "results.csv"
    rows = list(csv.DictReader(io.read_text(path, f"Rerun spectral-jax report --root {root}: it writes it again.")
                               .splitlines()))
    if any(None in row or None in row.values() for row in rows):
        raise DamagedFile(path, "a row does not have the header's fields",
                          f"Rerun spectral-jax report --root {root}: it writes it again.")
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str):
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def config_value(config, dotted: str):
    """The value of a dotted key in a ConfigDict (tuples as lists, as in config.json)."""
    for part in dotted.split("."):
        config = config[part]
    return list(config) if isinstance(config, tuple) else config
