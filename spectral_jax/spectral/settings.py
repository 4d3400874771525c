"""The settings of one analysis: which of `config.analysis` matter for its kind of lines, the
folder they write (`analysis/<name>/`), and the record kept beside the results.

Only settings that change the numbers name the folder: the run's own settings (those of its
config.json; outside a run, the defaults) keep `analysis/interpolation/`; any other combination
gets `<lines>-<sampling>-<signal>-<hash>` (e.g. `random-distance-prob_distance-3fa2c1`), so a
second analysis never overwrites the first. How the work is laid out (chunks, forward batch, stacking) is not a setting: it is
recorded in the folder's `settings.json` so that a resumed analysis lays it out the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import ml_collections

from spectral_jax import config as config_lib

DEFAULT_NAME = "interpolation"
COMMON = ("lines", "split", "classes", "signal", "save_logits")
SAMPLING = {"count": ("sampling", "num_points", "estimator", "hf_cutoff", "hf_cutoff_unit"),
            "reference": ("sampling", "num_points", "hf_cutoff", "hf_cutoff_unit"),
            "distance": ("sampling", "step", "max_points", "estimator", "hf_cutoff", "hf_cutoff_unit")}
# Settings that records written before the key existed stand for: the first release's estimator.
LEGACY = {"estimator": "linear"}
PER_LINES = {
    "pairs": ("pairs_per_class", "pairs_per_class_pair"),
    "random": ("images_per_class", "length", "centered", "direction_seed"),
    "fourier": ("images_per_class", "length", "centered", "spatial_frequency", "fourier_index"),
    "f": ("images_per_class", "length", "centered"),
    "1/f": ("images_per_class", "length", "centered"),
    "gradient": ("images_per_class", "length", "centered"),
    "plane": ("planes", "grid"),
}


def relevant_settings(analysis: ml_collections.ConfigDict | dict) -> dict[str, Any]:
    """The settings that determine this analysis's numbers, as plain JSON values."""
    a = dict(analysis)
    keys = COMMON + PER_LINES[a["lines"]] + (() if a["lines"] == "plane" else SAMPLING[a["sampling"]])
    return {k: list(a[k]) if isinstance(a[k], (tuple, list)) else a[k] for k in keys}


def same_settings(stored: dict | str | None, analysis) -> bool:
    """Whether a stored record of settings (dict or JSON) is that of `analysis`. A record written
    before a key of LEGACY existed holds its legacy value (the estimator then was `linear`)."""
    if stored is None:
        return False
    stored = json.loads(stored) if isinstance(stored, str) else dict(stored)
    wanted = relevant_settings(analysis)
    for key, value in LEGACY.items():
        if key in wanted and key not in stored:
            stored[key] = value
    return stored == json.loads(json.dumps(wanted))


def _defaults() -> dict[str, Any]:
    return config_lib.base_config().analysis.to_dict()


def analysis_name(analysis: ml_collections.ConfigDict | dict, own: ml_collections.ConfigDict | dict | None = None) -> str:
    """`analysis.name` if set; `interpolation` for the run's `own` settings (default: the
    defaults); else derived from the settings (see the module docstring)."""
    a = dict(analysis)
    if a.get("name"):
        return a["name"]
    settings = relevant_settings(a)
    if settings == relevant_settings(dict(own) if own is not None else _defaults()):
        return DEFAULT_NAME
    # Legacy values are left out of the hash, so folders named before their key existed keep their name.
    named = {k: v for k, v in settings.items() if LEGACY.get(k, object()) != v}
    digest = hashlib.sha1(json.dumps(named, sort_keys=True).encode()).hexdigest()[:6]
    lines = a["lines"].replace("1/f", "inv_f")
    parts = [lines] + ([] if lines == "plane" else [a["sampling"]]) + [a["signal"], digest]
    return "-".join(parts)


def settings_json(analysis) -> str:
    """The canonical JSON of `relevant_settings`, stored with every result to compare settings."""
    return json.dumps(relevant_settings(analysis), sort_keys=True)


def class_diversity_name(name: str) -> str:
    """Class diversity of the default analysis goes to analysis/class_diversity/."""
    return "class_diversity" if name == DEFAULT_NAME else f"{name}-class_diversity"


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the work was laid out: reused on resume so that the numbers come out identical."""

    chunk_lines: int
    forward_batch: int
    stack: int
    part_lines: int = 0  # lines per flushed part (0 in records older than this field: flush_lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
