"""The errors spectral-jax raises for bad input, at the bottom of the import graph.

Every layer raises these; the command line turns any `UserError` into one line
`spectral-jax CMD: error: ...` (exit 2) instead of a traceback. Messages say what is wrong and
what to do about it.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A problem the user can fix (bad config, missing data, a damaged or foreign file)."""


class ConfigError(UserError, ValueError):
    """A config problem found before any compute; the message says how to fix it."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """' Did you mean a, b?' for the closest valid names, or ''."""
    near = difflib.get_close_matches(str(name), list(valid), n=3)
    return f" Did you mean {', '.join(near)}?" if near else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """`Unknown model 'wrn32'. Did you mean wrn_32? Valid models: ...` for any registry."""
    valid = list(valid)
    return ConfigError(f"Unknown {kind} {name!r}.{did_you_mean(name, valid)} Valid {kind}s: {', '.join(valid)}.")


class DamagedFile(UserError):
    """A file spectral-jax reads back (config.json, metrics.jsonl, summary.json, an analysis
    npz/csv, a checkpoint) is unreadable; the message names it, says what is wrong and the way out."""

    def __init__(self, path, problem: str, way_out: str):
        self.path, self.problem, self.way_out = path, problem, way_out
        super().__init__(one_line(f"{path} is damaged: {problem}. {way_out}"))


class CheckpointMismatch(ConfigError):
    """A checkpoint holds another model (or another shape of train state) than the config builds."""


class RunDirBusy(UserError):
    """Another live process owns this run directory (or its analysis/report folder)."""


class TrainingDiverged(UserError, FloatingPointError):
    """The training loss became NaN/Inf; the last good checkpoint is kept."""


class OutOfDisk(UserError):
    """A write failed with ENOSPC/EDQUOT; what was complete before is kept."""


def one_line(text: str, limit: int = 600) -> str:
    """`text` with all whitespace runs collapsed to one space, cut at `limit` characters (the CLI
    prints errors as one line; library errors such as orbax's can span a whole tree dump)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
