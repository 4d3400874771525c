"""Checked reads of the files a run directory holds: a damaged file raises `DamagedFile` naming
the file, what is wrong with it and the way out (`way_out`, given by the caller, who knows which
command rebuilds it), never a parser's traceback.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spectral_jax.errors import DamagedFile

DEFAULT_WAY_OUT = "Move it away and rerun the command that wrote it."


def read_json(path: str | os.PathLike, way_out: str = DEFAULT_WAY_OUT, kind: type = dict) -> Any:
    """The JSON value in `path`, which must be a `kind` (a JSON object by default)."""
    text = read_text(path, way_out)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedFile(path, f"not valid JSON ({e.msg}: line {e.lineno}, column {e.colno})", way_out) from e
    if kind is not None and not isinstance(value, kind):
        raise DamagedFile(path, f"expected a JSON {_json_name(kind)}, found a {_json_name(type(value))}", way_out)
    return value


def parse_jsonl(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(the lines of a JSON-lines file that are JSON objects, one problem per other line:
    "line 3 is ..."). A missing file is ([], [])."""
    path = Path(path)
    if not path.exists():
        return [], []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        return [], [f"unreadable ({e.strerror or e})"]
    records, problems = [], []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {i} is not valid JSON ({e.msg}: column {e.colno})")
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            problems.append(f"line {i} is a JSON {_json_name(type(value))}, not an object")
    return records, problems


def read_jsonl(path: str | os.PathLike, way_out: str = DEFAULT_WAY_OUT) -> list[dict]:
    """Every line of a JSON-lines file as a dict ([] when the file is missing); any damaged line
    is an error naming it."""
    records, problems = parse_jsonl(path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedFile(path, problems[0] + more, way_out)
    return records


def load_npz(path: str | os.PathLike, keys: Sequence[str] | None = None, way_out: str = DEFAULT_WAY_OUT,
             required: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The arrays `keys` (default: all) of an .npz, read eagerly so a damaged member (bad zip CRC,
    truncated array) is found here; `required` keys must be present."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in required if k not in f.files]
            if missing:
                raise DamagedFile(path, f"it lacks the arrays {', '.join(missing)}", way_out)
            return {k: f[k] for k in (f.files if keys is None else [k for k in keys if k in f.files])}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DamagedFile(path, f"not a readable .npz ({type(e).__name__}: {e})", way_out) from e


def read_csv(path: str | os.PathLike, way_out: str = DEFAULT_WAY_OUT, text_columns: Sequence[str] = (),
             required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rows of a CSV file with a header; columns not in `text_columns` are parsed as floats.
    A short or long row, a missing `required` column or a non-number is an error naming the line."""
    text = read_text(path, way_out)
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if not header or missing:
        raise DamagedFile(path, f"its header lacks the columns {', '.join(missing or required) or '(any)'}", way_out)
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row or None in row.values():
            raise DamagedFile(path, f"line {line} does not have the header's {len(header)} fields", way_out)
        try:
            rows.append({k: (v if k in text_columns else float(v)) for k, v in row.items()})
        except ValueError as e:
            raise DamagedFile(path, f"line {line}: {e}", way_out) from e
    return rows


def read_text(path: str | os.PathLike, way_out: str = DEFAULT_WAY_OUT) -> str:
    """A UTF-8 text file; an unreadable or undecodable one is a `DamagedFile` (a missing one
    stays FileNotFoundError: callers decide what absence means)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as e:
        raise DamagedFile(path, f"not UTF-8 text (byte {e.start})", way_out) from e
    except OSError as e:
        raise DamagedFile(path, f"unreadable ({e.strerror or e})", way_out) from e


def _json_name(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(kind, kind.__name__)
