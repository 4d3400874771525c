"""Expanding an experiment config into the runs of a sweep, before anything is submitted.

`expand(spec, root)` calls the config file's `get_config(ARG)` and `get_sweep(ARG)` and gives
one `Run` per distinct resolved config, each in `ROOT/<readable name>-<hash>/`:

- the readable name joins the overrides as given (`model-cnn_type-radial_frequency-2_seed-0`);
- the hash (8 hex digits of sha1) covers only the *effective* overrides, those whose value
  differs from the base config, so two spellings of one config are one run (an intervention
  sweep's baseline appears once) and the name does not depend on ROOT.

Every run's config is validated here (unknown keys, bad values: a ConfigError before any
compute). A `RunRef` value becomes the referenced run's directory, and the referring run
depends on it (`stage` = 1 + its dependencies' stage).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import ml_collections

from spectral_jax import config as config_lib
from spectral_jax.errors import ConfigError
from spectral_jax.report.aggregate import config_value
from spectral_jax.sweep.hyper import RunRef

MAX_READABLE = 80  # characters of the readable part of a run name
HASH_CHARS = 8
FIGURES = ("noise_fitting", "training_time", "intervention", "image_frequency", "class_diversity")
SEED_KEY = "seed"


@dataclasses.dataclass
class Run:
    """One run of a sweep: its directory name, overrides and resolved config."""

    name: str
    overrides: dict[str, Any]  # as get_sweep gave them (JSON values; a RunRef as "@<run name>")
    effective: dict[str, Any]  # the overrides that change the base config
    label: str  # the overrides but the seed ("baseline" if none): the arm it belongs to, seeds averaged
    config: ml_collections.ConfigDict
    depends_on: tuple[str, ...] = ()
    stage: int = 0

    def record(self) -> dict:
        """The run's entry in sweep.json."""
        return {"name": self.name, "overrides": self.overrides, "effective": self.effective, "label": self.label,
                "depends_on": list(self.depends_on), "stage": self.stage}


@dataclasses.dataclass
class Plan:
    """An expanded sweep: where its config came from, its runs, and the figure its report draws."""

    spec: str
    base_overrides: list[tuple[str, str]]
    figure: str
    title: str
    swept_keys: list[str]
    runs: list[Run]

    def record(self) -> dict:
        """sweep.json's content."""
        return {"config": self.spec, "base_overrides": [list(o) for o in self.base_overrides],
                "figure": self.figure, "title": self.title, "swept_keys": self.swept_keys,
                "runs": [r.record() for r in self.runs]}


def expand(spec: str, root: str | Path, base_overrides=()) -> Plan:
    """The runs of the config file `spec` (`path.py[:ARG]`), with sweep-wide `base_overrides`
    (`[(dotted key, string)]`, as from `--config.KEY=VALUE`) applied to every run."""
    root = Path(root).absolute()
    module, _ = config_lib.load_config_module(spec, "get_sweep")  # the file runs once
    base = config_lib.load_config_file(spec, module)
    config_lib.apply_overrides(base, base_overrides)
    figure = getattr(module, "FIGURE", "intervention")
    if figure not in FIGURES:
        raise ConfigError(f"{spec}: FIGURE = {figure!r}; valid figures: {', '.join(FIGURES)}.")
    title = re.sub(r"\s*\(docs/methods\.md[^)]*\)", "", (module.__doc__ or spec).strip().splitlines()[0])
    given = config_lib.call_config_function(spec, "get_sweep", module)
    if not isinstance(given, list) or not given or not all(isinstance(r, dict) for r in given):
        raise ConfigError(f"{spec}: get_sweep() must return a non-empty list of override dicts.")
    runs = _resolve(given, base, root, spec)
    swept = list(dict.fromkeys(k for r in given for k in r))
    return Plan(spec, list(base_overrides), figure, title, swept, runs)


def _resolve(given: list[dict], base: ml_collections.ConfigDict, root: Path, spec: str) -> list[Run]:
    """Runs in get_sweep's order, duplicates dropped, RunRefs resolved (a reference may point
    to any run of the sweep that does not itself refer back)."""
    pending = list(enumerate(given))
    by_identity: dict[str, Run] = {}
    order: dict[str, int] = {}
    while pending:
        left = []
        for index, overrides in pending:
            refs = {k: v for k, v in overrides.items() if isinstance(v, RunRef)}
            targets = {k: by_identity.get(_identity(base, dict(v.overrides), {}, spec)) for k, v in refs.items()}
            if any(t is None for t in targets.values()):
                left.append((index, overrides))
                continue
            ident = _identity(base, overrides, targets, spec)
            if ident not in by_identity:
                by_identity[ident] = _make_run(base, overrides, targets, root, ident, spec)
                order[ident] = index
        if len(left) == len(pending):
            bad = left[0][1]
            raise ConfigError(f"{spec}: a RunRef in the run {_jsonable(bad, {})} names no other run of the sweep "
                              f"(a RunRef's overrides must equal those of a run without a cycle of references).")
        pending = left
    runs = sorted(by_identity.values(), key=lambda r: order[_identity_of(r)])
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two identities with one readable name and hash prefix
        raise ConfigError(f"{spec}: two runs share the name {max(names, key=names.count)!r}.")
    return runs


def _identity_of(run: Run) -> str:
    return run.name.rsplit("-", 1)[1]


def _make_run(base, overrides: dict, targets: dict[str, Run], root: Path, ident: str, spec: str) -> Run:
    config = _apply(base, overrides, {k: str(root / t.name) for k, t in targets.items()}, spec)
    checked = copy.deepcopy(config)
    for key in targets:  # the referenced run does not exist yet: it is checked when this run starts
        _set(checked, key, "")
    config_lib.validate(checked)
    effective = _effective(base, config, overrides, targets)
    label = " ".join(f"{k}={'@run' if k in targets else _text(v)}" for k, v in overrides.items() if k != SEED_KEY)
    readable = _readable(overrides, targets)
    return Run(name=f"{readable}-{ident}", overrides=_jsonable(overrides, targets), effective=effective,
               label=label or "baseline", config=config, depends_on=tuple(t.name for t in targets.values()),
               stage=1 + max((t.stage for t in targets.values()), default=-1))


def _identity(base, overrides: dict, targets: dict, spec: str) -> str:
    """8 hex digits of sha1 over the effective overrides (references by the target's name)."""
    config = _apply(base, {k: v for k, v in overrides.items() if k not in targets}, {}, spec)
    effective = _effective(base, config, overrides, targets)
    text = json.dumps(effective, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:HASH_CHARS]


def _apply(base, overrides: dict, resolved_refs: dict[str, str], spec: str) -> ml_collections.ConfigDict:
    config = copy.deepcopy(base)
    plain = [(k, repr(v)) for k, v in overrides.items() if not isinstance(v, RunRef)]
    try:  # repr() of a Python literal parses back to the same value
        config_lib.apply_overrides(config, plain)
    except ConfigError as e:
        raise ConfigError(f"{spec}: run {_jsonable(overrides, {})}: {e}") from e
    for key, path in resolved_refs.items():
        _set(config, key, path)
    return config


def _effective(base, config, overrides: dict, targets: dict[str, Run]) -> dict[str, Any]:
    out = {}
    for key, value in overrides.items():
        if key in targets:
            out[key] = "@" + targets[key].name
        elif config_value(config, key) != config_value(base, key):
            out[key] = config_value(config, key)
    return out


def _readable(overrides: dict, targets: dict[str, Run]) -> str:
    parts = []
    for key, value in overrides.items():
        short = key.rsplit(".", 1)[-1]
        text = targets[key].name.rsplit("-", 1)[0] if key in targets else _text(value)
        parts.append(f"{short}-{text}")
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(parts)) or "base"
    return readable[:MAX_READABLE].strip("_-") or "base"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _jsonable(overrides: dict, targets: dict[str, Run]) -> dict:
    return {k: ("@" + targets[k].name if k in targets else
                f"@{dict(v.overrides)}" if isinstance(v, RunRef) else list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()}


def _set(config, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config[part]
    config[last] = value
