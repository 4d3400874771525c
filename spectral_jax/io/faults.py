"""Deterministic fault injection for the crash-consistency tests (docs/run_directory.md).

    SPECTRAL_JAX_FAULT="PATTERN:N[:ACTION]"

The N-th time (1-based, counted in this process) a fault point whose name matches PATTERN
(`fnmatch`, so `*` also crosses `/`) is reached, ACTION happens:

- `kill`  (default): SIGKILL to this process, as a power-less crash at that instant;
- `stop`: SIGSTOP, the process freezes holding its locks until it gets SIGCONT;
- `enospc`: `OSError(ENOSPC)`, as a full disk reports it.

Fault points: every atomic write just before the rename that publishes it, named by the file's
absolute path (`*/metrics.jsonl`, `*/step_*.npz`, `*/report/summary.json`, ...), and the
checkpoint phases `checkpoint.begin` (temporary step folder made, nothing written),
`checkpoint.commit` (everything written and flushed, before the rename) and `checkpoint.saved`
(published and old steps moved away, before they are deleted). Unset, a point costs one
environment lookup.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal

FAULT_ENV = "SPECTRAL_JAX_FAULT"
ACTIONS = ("kill", "stop", "enospc")

_armed = {"spec": None, "count": 0}  # the spec seen last, and how often its pattern matched


def fault_point(name: str) -> None:
    """Reached at a named point of a write; does nothing unless SPECTRAL_JAX_FAULT names it."""
    spec = os.environ.get(FAULT_ENV)
    if spec != _armed["spec"]:  # a new (or no) spec counts from 1 again
        _armed.update(spec=spec, count=0)
    if not spec:
        return
    pattern, n, action = parse_fault(spec)
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _armed["count"] += 1
    if _armed["count"] != n:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected at {name})")
    os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)


def parse_fault(spec: str) -> tuple[str, int, str]:
    """`"*/metrics.jsonl:2:enospc"` -> ("*/metrics.jsonl", 2, "enospc"); the action defaults to kill."""
    head, _, last = spec.rpartition(":")
    action = "kill"
    if last in ACTIONS:
        action, (head, _, last) = last, head.rpartition(":")
    if not head or not last.isdigit() or int(last) < 1:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected PATTERN:N[:ACTION] with N >= 1 and ACTION one of "
                         f"{', '.join(ACTIONS)}.")
    return head, int(last), action
