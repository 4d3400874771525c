"""The notebook API: interpolation spectra of any JAX model, and a run directory as an object.

    spectra = spectral_jax.interpolation_spectra(apply_fn, variables, images, labels)
    spectra.summary(); spectra.plot(); spectra.save("s.npz")
    run = spectral_jax.load_run("runs/demo"); run.spectra(run.steps[-1], lines="random")

`apply_fn(variables, images) -> logits` is any pure function (Flax NNX or Linen, Equinox,
plain JAX); images are NHWC images or feature vectors [N, D]. Every option is a key of
`config.analysis` (docs/analysis.md), checked before any compute.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models, parallel
from spectral_jax.errors import ConfigError
from spectral_jax.report import figures
from spectral_jax.spectral import checks
from spectral_jax.spectral import results as results_lib
from spectral_jax.spectral import series
from spectral_jax.spectral.inputs import LineInputs, compact, line_inputs, standardized
from spectral_jax.spectral.lines import KINDS, check_indices, direction_lines, pair_lines
from spectral_jax.train import checkpoints

# Per-line arrays of a results file that are not statistics or lines.
_META = ("kind", "labels", "pairs", "step", "kind_names", "settings_json", "frequency", "triples", "coords",
         "extent", "side")


@dataclasses.dataclass(frozen=True)
class Spectra:
    """Per-line results (the arrays of an `analyze` step file) with summaries, a table and a plot.

    `spectra["hf_power"]` is a per-line array [P]; `kind` [P] indexes KINDS (`kind_name`),
    `labels` [P, 2] the classes of x_0 and x_1, `pairs` [P, 2] their indices (-1: none)."""

    arrays: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __len__(self) -> int:
        return int(len(self.arrays["kind"]))

    @property
    def kind(self) -> np.ndarray:
        return self.arrays["kind"]

    @property
    def kind_name(self) -> np.ndarray:
        return np.asarray(KINDS)[self.kind]

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["labels"]

    @property
    def pairs(self) -> np.ndarray:
        return self.arrays["pairs"]

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(str(self.arrays["settings_json"]))

    @property
    def statistics(self) -> dict[str, np.ndarray]:
        """Every per-line scalar statistic, name -> [P]."""
        n = len(self)
        return {k: v for k, v in self.arrays.items() if k not in _META and v.shape == (n,)}

    def summary(self) -> list[dict]:
        """Per kind of line: n, and mean, s.e.m. and median of every statistic."""
        return results_lib.summarize(self.arrays, self.kind)

    def to_dataframe(self):
        """One row per line: kind, labels, pair indices and every scalar statistic (needs pandas)."""
        try:
            import pandas as pd  # optional: only this method needs it
        except ImportError:
            raise ImportError("Spectra.to_dataframe needs pandas: pip install 'spectral-jax[notebook]' "
                              "(or pip install pandas); summary() and the arrays work without it.") from None
        columns = {"kind": self.kind_name, "label_0": self.labels[:, 0], "label_1": self.labels[:, 1],
                   "index_0": self.pairs[:, 0], "index_1": self.pairs[:, 1], **self.statistics}
        return pd.DataFrame(columns)

    def plot(self, ax=None):
        """Mean spectra per kind of line (log scale) with the high-frequency cutoff; returns the axes."""
        ax = ax if ax is not None else figures.new_axes()
        figures.plot_spectra(ax, self.arrays)
        return ax

    def save(self, path: str | Path) -> None:
        results_lib.save(path, self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Spectra":
        return cls(results_lib.load(path))


def interpolation_spectra(apply_fn: Callable, variables: Any, images, labels=None, *, pairs=None, x0=None, x1=None,
                          directions=None, mean=None, std=None, mesh=None, **settings) -> Spectra:
    """Spectra of `apply_fn(variables, .)` along lines through `images` [N, *S].

    Lines, in order of precedence: explicit endpoints `x0`, `x1` [P, *S] (same preprocessing as
    `images`; `labels` then [P], the class of each x0, optional, -1: none); `pairs` [P, 2] indices into
    `images`; `directions` ([*S] or one per line) from each chosen image; else
    `settings["lines"]` (default "pairs": within/between class, which needs `labels`).
    `images`: standardized float, or uint8 with `mean`/`std` (per channel, [0, 1] pixel units);
    float images with `mean`/`std` are standardized as (x - mean) / std on the host.
    `settings`: any key of `config.analysis` (num_points=64, pairs_per_class=200,
    pairs_per_class_pair=20, sampling="count", signal="prob_distance", length=10.0, ...).
    `mesh`: lines are split over its `data` axis (default: every device). With `variables`
    replicated on the mesh (or on one device) nothing is copied per call.
    Bad inputs are a `ConfigError` before any compute (docs/analysis.md "Input checks").
    """
    a = analysis_settings(**settings)
    images = images if isinstance(images, jax.Array) else np.asarray(images)
    checks.image_layout(images.shape)
    checks.mean_std(mean, std)
    uint8 = images.dtype == np.uint8
    if uint8 and mean is None:
        raise ConfigError("uint8 images need mean and std (per channel, [0, 1] pixel units).")
    if mean is not None and not uint8:
        images = (np.asarray(images, np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        x0 = None if x0 is None else (np.asarray(x0, np.float32) - mean) / std
        x1 = None if x1 is None else (np.asarray(x1, np.float32) - mean) / std
        mean = std = None
    take = functools.partial(np.take, np.asarray(images), axis=0)
    if x0 is not None or x1 is not None:
        inputs = _endpoint_inputs(x0, x1, labels, images, mean, std)
        labels = inputs.lines.labels[:, 0] if labels is not None else None
    elif pairs is not None:
        labels = checks.class_labels(labels, len(images))
        check_indices(np.asarray(pairs), len(images), "pair indices")
        inputs = compact(pair_lines(pairs, labels), take, mean, std)
    elif directions is not None:
        labels = checks.class_labels(labels, len(images))
        select = np.zeros(len(images), np.int32) if labels is None else labels
        lines = direction_lines(select, "custom", length=a["length"], centered=a["centered"],
                                images_per_class=a["images_per_class"], classes=tuple(a["classes"]),
                                num_directions=1 if np.shape(directions) == images.shape[1:] else len(directions))
        if labels is None:
            lines = dataclasses.replace(lines, labels=np.full_like(lines.labels, -1))
        inputs = compact(lines, take, mean, std, directions)
    else:
        if labels is None:
            raise ConfigError(f"lines={a['lines']!r} needs labels (or give pairs=..., x0=/x1=, or directions=...).")
        labels = checks.class_labels(labels, len(images))
        inputs = line_inputs(labels, take, a, mean, std)
    checks.check_inputs(apply_fn, variables, inputs, labels=labels, labels_of="x0" if x0 is not None else "image")
    evaluator = series.evaluator_for(apply_fn, a, parallel.make_mesh() if mesh is None else mesh)
    prepared = evaluator.prepare(variables, inputs.table, inputs.lines, inputs.mean, inputs.std,
                                 directions=inputs.directions)
    stats = evaluator.evaluate(prepared)
    return Spectra(series.step_results(stats, inputs, a, prepared.n_fft))


def analysis_settings(**settings) -> dict[str, Any]:
    """`config.analysis` defaults updated with `settings`, validated (unknown keys are an error)."""
    a = config_lib.base_config().analysis
    config_lib.apply_overrides(a, [(k, repr(v) if not isinstance(v, str) else v) for k, v in settings.items()])
    config_lib.validate_analysis(a)
    return a.to_dict()


def _endpoint_inputs(x0, x1, labels, images, mean, std) -> LineInputs:
    if x0 is None or x1 is None:
        raise ConfigError("Give both x0 and x1 (the endpoints of each line).")
    x0, x1 = np.asarray(x0), np.asarray(x1)
    if x0.shape != x1.shape or x0.ndim < 2 or x0.shape[1:] != tuple(images.shape[1:]):
        raise ConfigError(f"x0 and x1 must both be [P, {', '.join(map(str, images.shape[1:]))}] like the images, "
                          f"got {x0.shape} and {x1.shape}.")
    p = len(x0)
    lines = pair_lines(np.stack([np.arange(p), np.arange(p, 2 * p)], 1))
    if labels is not None:
        labels = checks.class_labels(labels, p, unlabeled=True, what="x0")
        lines = dataclasses.replace(lines, labels=np.stack([labels, np.full(p, -1)], 1).astype(np.int32))
    table = np.concatenate([x0, x1]).astype(images.dtype)
    return LineInputs(lines, table, mean, std, None, np.full((p, 2), -1, np.int32))


# --------------------------------------------------------------------------------------


def load_run(workdir: str | Path) -> "Run":
    """A spectral-jax run directory as an object (nothing is read until it is needed)."""
    return Run(Path(workdir), config_lib.load_run_config(workdir))


@dataclasses.dataclass
class Run:
    """A run directory: `.config`, `.dataset`, `.steps`, `.apply_fn`, `.variables(step)`,
    `.images(split)`, `.spectra(step, **settings)`, `.summary()`."""

    workdir: Path
    config: ml_collections.ConfigDict

    @functools.cached_property
    def dataset(self) -> data_lib.Dataset:
        return data_lib.open_dataset(self.config)

    @property
    def steps(self) -> list[int]:
        """Steps with a complete checkpoint, ascending."""
        return checkpoints.valid_steps(self.workdir, warn=False)

    @functools.cached_property
    def model(self) -> models.PureModel:
        return self._model_and_abstract[0]

    @functools.cached_property
    def _model_and_abstract(self):
        return models.create_model(self.config, self.dataset.image_shape, self.dataset.num_classes)

    @property
    def apply_fn(self) -> Callable:
        return self.model.apply_fn

    @property
    def features_fn(self) -> Callable:
        return self.model.features_fn

    def variables(self, step: int | None = None) -> Any:
        """The variables at `step` (default: the last), restored onto the devices."""
        (step,) = series.select_steps(self.workdir, "last" if step is None else [step])
        return series.restore(self.workdir, step, self._model_and_abstract[1], parallel.make_mesh(), self.config)

    def images(self, split: str = "test") -> data_lib.Split:
        """The split's uint8 images [N, H, W, C] and labels (standardize with `.dataset.mean/std`)."""
        if split not in self.dataset.splits:
            raise ConfigError(f"{self.config.dataset} has no split {split!r}; it has {', '.join(self.dataset.splits)}.")
        s = self.dataset.split(split)
        return s if isinstance(s, data_lib.Split) else s.take(np.arange(len(s)))

    def spectra(self, step: int | None = None, **settings) -> Spectra:
        """Spectra at `step` (default: the last) with `config.analysis` updated by `settings`."""
        config = self.config.copy_and_resolve_references()
        for k, v in analysis_settings(**{**{k: v for k, v in config.analysis.items()}, **settings}).items():
            config.analysis[k] = v
        variables = self.variables(step)
        inputs = series.config_inputs(config, self.dataset)
        checks.check_inputs(self.apply_fn, variables, inputs, batch_check=False)  # a registry model: eval mode
        evaluator = series.evaluator_for(self.apply_fn, config.analysis, parallel.make_mesh())
        prepared = evaluator.prepare(variables, inputs.table, inputs.lines, inputs.mean, inputs.std,
                                     directions=inputs.directions)
        step = step if step is not None else self.steps[-1]
        return Spectra(series.step_results(evaluator.evaluate(prepared), inputs, config.analysis, prepared.n_fft, step))

    def summary(self) -> dict[str, Any]:
        """The run's summary.json (`training`) and every analysis's summary rows (`analyses`)."""
        path = self.workdir / "summary.json"
        return {"training": io.read_json(path) if path.exists() else {},
                "analyses": {name: series.read_summary(self.workdir, name) for name in series.analysis_names(self.workdir)}}


__all__ = ["Spectra", "interpolation_spectra", "load_run", "Run", "standardized"]
