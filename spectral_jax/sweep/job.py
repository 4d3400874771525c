"""What one job of a sweep does: train, analyse and report each run of its group.

A group of several runs trains its unfinished runs as one ensemble (one compiled program,
`train.train_runs`), then analyses and reports each. A run that fails (any exception) is
recorded as failed with the error's last line and the group goes on to its next run; the job
itself never fails for one run. Training resumes from the run's newest checkpoint, so a job
started again after an interruption picks up where the last one stopped.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Sequence

import ml_collections

from spectral_jax import parallel
from spectral_jax.report import write_report
from spectral_jax.spectral.series import analyze_run
from spectral_jax.sweep import state as state_lib
from spectral_jax.train import train_and_evaluate, train_runs


def run_group(root: str, runs: Sequence[tuple[str, ml_collections.ConfigDict]], *, job_id: str = "",
              log: str = "", quiet: bool = False) -> dict[str, str]:
    """Runs every (name, config) of the group in ROOT/<name>; -> name -> "done" | "failed"."""
    root, t0 = Path(root), time.time()
    recorders = {name: _recorder(root, name, job_id, log, t0) for name, _ in runs}
    todo = [(name, config) for name, config in runs if not state_lib.is_complete(root / name, config)]
    trained, error, members = set(), "", {name for name, _ in todo}
    if len(todo) > 1:  # one ensemble: its members train together, or fail together
        try:
            train_runs([c for _, c in todo], [root / n for n, _ in todo], quiet=quiet)
            trained = {n for n, _ in todo}
        except Exception as e:  # noqa: BLE001 - one failed group must not stop the others
            error = _failure(e)
    results = {}
    for name, config in runs:
        workdir = root / name
        try:
            if error and name in members:
                raise RuntimeError(error)
            if name not in trained:
                train_and_evaluate(config, workdir, quiet=quiet)
            analyze_run(workdir, config, quiet=quiet)
            write_report(workdir, quiet=quiet)
        except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
            recorders[name](state="failed", error=error or _failure(e), seconds=time.time() - t0)
            results[name] = "failed"
            continue
        recorders[name](state="done", seconds=time.time() - t0)
        results[name] = "done"
    return results


def _recorder(root: Path, name: str, job_id: str, log: str, t0: float):
    """Records the run as running (attempt n+1) in ROOT/jobs/state/<name>.json and returns the
    function that records its end (process 0 only, when the run spans several processes)."""
    if not parallel.is_main_process():
        return lambda **fields: None
    attempt = int(state_lib.read_state(root, name).get("attempt", 0)) + 1
    state_lib.write_state(root, name, state="running", attempt=attempt, started=t0, host=socket.gethostname(),
                          pid=os.getpid(), job_id=job_id, log=log, error="", seconds=None)
    return lambda **fields: state_lib.write_state(root, name, **fields)


def _failure(e: Exception) -> str:
    traceback.print_exc()
    return traceback.format_exception_only(type(e), e)[-1].strip()
