"""One owner per run directory and role: an exclusive `flock` on WORKDIR/.<role>.lock, with the
owner's host, pid, start time and command written inside it for the message a second owner gets.

The kernel drops the lock when its process ends, however it ends (`kill -9` included), so a
lock is never stale. Roles: `train` (config.json, checkpoints/, metrics.jsonl, summary.json,
tensorboard/), `analyze` (analysis/), `report` (report/), and on a sweep root `sweep` (one
driver: sweep.json, jobs/submitted.json); readers take none. The lock files sit
at the top of the run directory, so a refused command creates no folder. On a file system
without flock (some network mounts) the lock is skipped with a warning: see
docs/run_directory.md for what holds there.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import warnings
from pathlib import Path

from spectral_jax.errors import RunDirBusy
from spectral_jax.io.atomic import remove_stale_temps

LOCK_SUFFIX = ".lock"
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)


def lock_path(workdir: str | os.PathLike, role: str) -> Path:
    return Path(workdir) / f".{role}{LOCK_SUFFIX}"


class RunLock:
    """`with RunLock(workdir, "train"):` holds WORKDIR/.train.lock for the block (a no-op when
    `enabled` is false, e.g. on processes other than 0). On taking it, the temporary files that
    killed writers left in what the role owns are removed (only the owner may): the top level of
    WORKDIR, or with `owns="analysis"` the whole tree of WORKDIR/analysis (only its top level with
    `recursive=False`). A second owner, in this process or another, gets `RunDirBusy` naming the
    first."""

    def __init__(self, workdir: str | os.PathLike, role: str, *, owns: str = "", recursive: bool | None = None,
                 enabled: bool = True):
        self.workdir, self.role, self.owns, self.enabled = Path(workdir), role, owns, enabled
        self.recursive = bool(owns) if recursive is None else recursive
        self.path = lock_path(workdir, role)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if not self.enabled or self._fd is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirBusy(self._busy_message()) from None
        except OSError as e:
            if e.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            warnings.warn(f"{self.workdir}: the file system refuses flock ({e.strerror}); running without the "
                          f"run-directory lock, so make sure no other {self.role} uses it.", stacklevel=2)
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner_info(self.role)) + "\n").encode(), 0)
        except OSError:  # the note is only a hint for the message (a full disk must not stop here)
            pass
        remove_stale_temps(self.workdir / self.owns, recursive=self.recursive)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a later reader sees no stale owner
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _busy_message(self) -> str:
        owner = read_owner(self.path)
        pid = owner.get("pid", "?")
        who = (f"another {owner.get('role', self.role)} (pid {pid} on host {owner.get('host', '?')}, since "
               f"{owner.get('started', '?')}, command: {owner.get('command', '?')})" if owner
               else f"another {self.role} (its owner note is not written yet)")
        stop = f"stop it (kill {pid})" if owner.get("host") == socket.gethostname() else "stop it"
        return (f"{self.workdir} is in use by {who}. One {self.role} at a time: wait for it to finish, or {stop}, "
                f"then rerun; a killed owner frees it at once.")


def owner_info(role: str) -> dict:
    """What the owner note says: role, pid, host, start time and the command line."""
    return {"role": role, "pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"}


def read_owner(path: str | os.PathLike) -> dict:
    """The owner note of a lock file ({} when empty or unreadable: it is only a hint)."""
    try:
        value = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
