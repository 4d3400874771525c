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
