"""Building a sweep in an experiment config's `get_sweep(arg)`: lists of override dicts.

A sweep is a list of runs, each a dict `{dotted config key: value}` applied on top of the
file's `get_config(arg)`:

    product(sweep("model", ["cnn", "mlp"]),
            chainit(fixed("noise.type", "uniform"),
                    product(sweep("noise.type", ["radial", "random"]), sweep("noise.frequency", [1.0, 2.0]))),
            sweep("seed", [0, 1]))

`product` takes the Cartesian product (the last argument varies fastest), `zipit` pairs runs
position by position, `chainit` concatenates. `RunRef(overrides)` as a value stands for the
directory of the run of the same sweep with exactly those overrides (a distillation student's
`teacher_workdir`); the referring run then waits for that run.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Iterable, Sequence

from spectral_jax.errors import ConfigError

Runs = list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class RunRef:
    """The run directory of another run of the same sweep, named by its overrides."""

    overrides: tuple[tuple[str, Any], ...]

    def __init__(self, overrides: dict[str, Any]):
        object.__setattr__(self, "overrides", tuple(sorted(overrides.items())))


def sweep(key: str, values: Iterable[Any]) -> Runs:
    """One run per value of `key`."""
    values = list(values)
    if not values:
        raise ConfigError(f"sweep({key!r}, ...) has no values.")
    return [{key: v} for v in values]


def fixed(key: str, value: Any) -> Runs:
    """A single run setting `key` (a one-value sweep)."""
    return [{key: value}]


def product(*sweeps: Sequence[dict]) -> Runs:
    """Every combination of one run from each sweep (the last sweep varies fastest)."""
    return [_merged(combo, "product") for combo in itertools.product(*sweeps)]


def zipit(*sweeps: Sequence[dict]) -> Runs:
    """Run i of every sweep merged into one run (the sweeps must have one length)."""
    if len({len(s) for s in sweeps}) > 1:
        raise ConfigError(f"zipit needs sweeps of one length, got lengths {[len(s) for s in sweeps]}.")
    return [_merged(parts, "zipit") for parts in zip(*sweeps)]


def chainit(*sweeps: Sequence[dict]) -> Runs:
    """The runs of every sweep, one after the other."""
    return [dict(run) for s in sweeps for run in s]


def _merged(parts: Sequence[dict], how: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        both = sorted(set(merged) & set(part))
        if both:
            raise ConfigError(f"{how} combines sweeps that both set {', '.join(both)}.")
        merged.update(part)
    return merged
