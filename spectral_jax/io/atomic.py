"""Atomic, durable writes: every result goes to a temporary name beside its target, is flushed
to disk (fsync), renamed onto the target, and the folder is flushed so the rename survives a
power cut.

A killed process therefore never leaves a half-written file that looks complete: at worst a
`.NAME.*.tmp*` file, which the next owner of the folder removes (`remove_stale_temps`). A full
disk (ENOSPC/EDQUOT) raises `OutOfDisk` and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from spectral_jax.errors import OutOfDisk
from spectral_jax.io.faults import fault_point

TEMP_MARK = ".tmp"  # temporary names: .NAME.<random>.tmp<suffix>
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
_UMASK = os.umask(0o022)  # read once at import (setting it is process-wide), then put back
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success flushes it and renames it onto `path`."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_MARK + path.suffix)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from the rest of a group
        yield tmp
        fsync_file(tmp)  # the data reaches the disk before the rename publishes it
        fault_point(str(path.absolute()))
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        if is_out_of_space(e):
            raise OutOfDisk(f"No space left on device while writing {path} ({e.strerror or e}): it was left as it "
                            f"was. Free space on that file system and rerun the same command; finished work is "
                            f"kept (a run resumes from its last complete checkpoint).") from e
        raise
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Rewrites a whole JSON-lines file (small files: one line per epoch)."""
    write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in records))


def savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flushes a folder's entries (new names, renames); a no-op where the file system refuses."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """Flushes every file and folder under `root` (a checkpoint before its publishing rename)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def is_out_of_space(e: BaseException | None) -> bool:
    """Whether `e` (or an exception it was raised from) is a full disk or quota."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _OUT_OF_SPACE:
            return True
        if any(os.strerror(code) in str(e) for code in _OUT_OF_SPACE):  # libraries that wrap the errno in text
            return True
        e = e.__cause__ or e.__context__
    return False


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Deletes the temporary files killed writers left in `folder` (only the folder's owner may)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(f".*{TEMP_MARK}*") if recursive else folder.glob(f".*{TEMP_MARK}*")
    removed = [p for p in found if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
