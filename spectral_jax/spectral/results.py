"""The saved form of an analysis: one .npz per checkpoint (the format of `Spectra.save`) and the
per-kind summary rows of summary.csv.

A results file holds the per-line arrays of `spectrum.line_statistics` (or, for planes, of
`plane.plane_statistics`), the lines (`kind` [P] int8 into `kind_names`, `labels` [P, 2],
`pairs` [P, 2] split indices of x_0 and x_1, -1 where there is none), `frequency` (the
one-sided bins' frequencies), `step` (-1 outside a run) and the settings that produced it
(`settings_json`, and each scalar setting as `setting_<key>`).
"""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Any

import numpy as np

from spectral_jax import io
from spectral_jax.errors import DamagedFile
from spectral_jax.spectral.lines import KINDS
from spectral_jax.spectral.spectrum import STATISTICS

# summary.csv: the first twelve columns are the original ones, in their order; later ones are appended.
SUMMARY_COLUMNS = (
    "step", "kind", "n_lines", "hf_power_mean", "hf_power_sem", "max_grad_mean", "max_grad_sem",
    "hf_fraction_mean", "centroid_mean", "r_end_mean", "logit_distance_mean", "test_acc",
    "hf_fraction_sem", "centroid_sem", "r_end_sem", "logit_distance_sem",
    "max_prob_distance_mean", "max_prob_distance_sem",
    *(f"{s}_median" for s in STATISTICS),
)


def with_metadata(stats: dict[str, np.ndarray], *, kind: np.ndarray, labels: np.ndarray, pairs: np.ndarray,
                  settings: dict[str, Any], step: int = -1, frequency: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The arrays of one results file (see the module docstring)."""
    out = dict(stats)
    out.update(kind=np.asarray(kind, np.int8), labels=np.asarray(labels, np.int32), pairs=np.asarray(pairs, np.int32),
               step=np.int64(step), kind_names=np.asarray(KINDS),
               settings_json=np.asarray(json.dumps(settings, sort_keys=True)))
    if frequency is not None:
        out["frequency"] = np.asarray(frequency, np.float32)
    for k, v in settings.items():
        if isinstance(v, (str, int, float, bool)):
            out[f"setting_{k}"] = np.asarray(v)
    return out


REDO = "Delete it and rerun spectral-jax analyze on its run directory: it recomputes what is missing."


def save(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    io.savez(path, **arrays)


def load(path: str | Path, keys: list[str] | None = None, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays `keys` (default: all) of a results file; a damaged one is an error naming it."""
    return io.load_npz(path, keys, way_out=REDO, required=required)


def stored_settings(path: str | Path) -> str | None:
    """The settings JSON a results file was made with (None if it is missing, has none or is
    damaged: it is then computed again)."""
    try:
        return str(io.load_npz(path, ["settings_json"])["settings_json"])
    except (FileNotFoundError, KeyError, DamagedFile):
        return None


def summarize(stats: dict[str, np.ndarray], kind: np.ndarray) -> list[dict]:
    """Per kind of line present: count, and mean, standard error and median of every statistic."""
    rows = []
    kind = np.asarray(kind)
    for k in np.unique(kind):
        sel = kind == k
        n = int(sel.sum())
        row: dict[str, Any] = {"kind": KINDS[int(k)], "n_lines": n}
        for stat in STATISTICS:
            if stat not in stats:
                continue
            v = np.asarray(stats[stat], np.float64)[sel]
            row[f"{stat}_mean"] = float(v.mean())
            row[f"{stat}_sem"] = float(standard_error(v))
            row[f"{stat}_median"] = float(np.median(v))
        rows.append(row)
    return rows


def csv_text(rows: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n",
                            restval="nan")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_csv(path: str | Path) -> list[dict]:
    """A summary.csv (or class_diversity.csv) as dicts with numeric values (kind stays a string)."""
    return io.read_csv(path, "Rerun spectral-jax analyze on its run directory: it writes the table again.",
                       text_columns=("kind",), required=("step",))


def standard_error(values, axis: int = 0):
    """Standard error of the mean along `axis` (sample std / sqrt(n)); 0 for a single value."""
    v = np.asarray(values, np.float64)
    n = v.shape[axis]
    return v.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(v.mean(axis=axis))
