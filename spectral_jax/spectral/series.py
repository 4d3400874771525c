"""`analyze_run`: interpolation spectra at every checkpoint of a run directory.

Writes, per checkpoint step N, WORKDIR/analysis/interpolation/step_<N>.npz with
`logits [P,M,K]`, `power [P,M//2+1]`, `hf_power`, `hf_fraction`, `centroid`, `max_grad`,
`r_end`, `logit_distance` (all [P]), `kind [P]` (0 within, 1 between), `labels [P,2]`,
`pairs [P,2]` and the settings that produced it; then one summary.csv over all steps:
mean (and standard error for the primary statistics) per step and kind of line.
"""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

import ml_collections
import numpy as np

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models, parallel
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import lines as lines_lib
from spectral_jax.spectral.evaluate import LineEvaluator
from spectral_jax.train import checkpoints

ANALYSIS_NAME = "interpolation"
SUMMARY_COLUMNS = (
    "step", "kind", "n_lines", "hf_power_mean", "hf_power_sem", "max_grad_mean", "max_grad_sem",
    "hf_fraction_mean", "centroid_mean", "r_end_mean", "logit_distance_mean", "test_acc",
)
KIND_NAMES = {lines_lib.WITHIN: "within", lines_lib.BETWEEN: "between"}
SETTINGS = ("split", "num_points", "pairs_per_class", "pairs_per_class_pair", "mode")


def analysis_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "analysis" / ANALYSIS_NAME


def analyze_run(workdir: str | Path, config: ml_collections.ConfigDict | None = None, *,
                quiet: bool = False) -> Path:
    """Analyses every valid checkpoint of `workdir` not yet analysed with the same settings.

    `config` defaults to WORKDIR/config.json (pass one to change `analysis.*`). Returns the
    path of summary.csv.
    """
    workdir = Path(workdir)
    log = (lambda *a: None) if quiet else print
    if config is None:
        config = config_lib.load_run_config(workdir)
    config_lib.validate(config)
    steps = checkpoints.valid_steps(workdir)
    if not steps:
        raise ConfigError(f"No checkpoints in {checkpoints.checkpoint_dir(workdir)}: "
                                f"train first (spectral-jax train --config=... --workdir {workdir}).")
    a = config.analysis
    dataset, lines, images, local_pairs = line_images(config)
    model, abstract = models.create_model(config, dataset.image_shape, dataset.num_classes)
    mesh = parallel.make_mesh()
    evaluator = LineEvaluator(model.apply_fn, a.num_points, a.chunk_lines, a.mode, mesh=mesh)
    images = parallel.put_replicated(images, mesh)
    settings = {k: a[k] for k in SETTINGS}
    out_dir = analysis_dir(workdir)

    for step in steps:
        path = out_dir / f"step_{step}.npz"
        if path.exists() and _same_settings(path, settings):
            continue
        variables = checkpoints.restore_variables(workdir, step, abstract)
        stats = evaluator(variables, images, local_pairs, dataset.mean, dataset.std)
        io.savez(path, **stats, kind=lines.kind, labels=lines.labels, pairs=lines.pairs, step=np.int64(step),
                 **{f"setting_{k}": np.asarray(v) for k, v in settings.items()})
        log(f"analyzed step {step}: {len(lines)} lines x {a.num_points} points -> {path}")
    summary = write_summary(workdir)
    log(f"wrote {summary}")
    return summary


def line_images(config):
    """-> (dataset, lines, uint8 images, pairs into those images) for `config.analysis`.

    Only the images the lines use are taken from the split (a streamed split decodes just
    those), so `lines.pairs` (split indices, saved) and the pairs into `images` differ."""
    a = config.analysis
    dataset = data_lib.open_dataset(config)
    if a.split not in dataset.splits:
        raise ConfigError(
            f"analysis.split={a.split!r}, but {config.dataset} has the splits {', '.join(dataset.splits)}"
            + (" (`val` exists only with --config.train_size)" if a.split == "val" else "") + ".")
    split = dataset.split(a.split)
    lines = lines_lib.select_lines(split.labels, a.pairs_per_class, a.pairs_per_class_pair)
    used, inverse = np.unique(lines.pairs, return_inverse=True)
    return dataset, lines, split.take(used).images, inverse.reshape(lines.pairs.shape).astype(np.int32)


def _same_settings(path: Path, settings: dict) -> bool:
    with np.load(path) as f:
        return all(f"setting_{k}" in f and f[f"setting_{k}"].item() == v for k, v in settings.items())


def summarize(stats: dict[str, np.ndarray], kind: np.ndarray) -> list[dict]:
    """Per kind of line: count, mean and standard error of the statistics."""
    rows = []
    for k, name in KIND_NAMES.items():
        sel = kind == k
        n = int(sel.sum())
        if n == 0:
            continue
        row = {"kind": name, "n_lines": n}
        for stat in ("hf_power", "max_grad", "hf_fraction", "centroid", "r_end", "logit_distance"):
            v = np.asarray(stats[stat], np.float64)[sel]
            row[f"{stat}_mean"] = float(v.mean())
            row[f"{stat}_sem"] = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        rows.append(row)
    return rows


def analysed_steps(workdir: str | Path) -> list[int]:
    """Steps with a step_<N>.npz, ascending."""
    names = analysis_dir(workdir).glob("step_*.npz")
    return sorted(int(p.stem.split("_")[1]) for p in names if p.stem.split("_")[1].isdigit())


def load_step(workdir: str | Path, step: int) -> dict[str, np.ndarray]:
    with np.load(analysis_dir(workdir) / f"step_{step}.npz") as f:
        return dict(f)


def write_summary(workdir: str | Path) -> Path:
    """summary.csv over every analysed step, joined with test accuracy from metrics.jsonl."""
    acc = {r["step"]: r.get("test_acc") for r in io.read_jsonl(Path(workdir) / "metrics.jsonl")}
    rows = []
    for step in analysed_steps(workdir):
        with np.load(analysis_dir(workdir) / f"step_{step}.npz") as f:
            for row in summarize(f, f["kind"]):
                rows.append({**row, "step": step, "test_acc": acc.get(step, float("nan"))})
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = analysis_dir(workdir) / "summary.csv"
    io.write_text(out, buf.getvalue())
    return out


def read_summary(workdir: str | Path) -> list[dict]:
    """summary.csv as a list of dicts with numeric values."""
    path = analysis_dir(workdir) / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `spectral-jax analyze --workdir {workdir}` first.")
    with open(path) as f:
        return [{k: (v if k == "kind" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
