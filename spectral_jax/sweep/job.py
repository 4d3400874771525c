"""What one job of a sweep does: train, analyse and report each run of its group, in order.

A run that fails (any exception) is recorded as failed with the error's last line and the
group goes on to its next run; the job itself never fails for one run. Training resumes from
the run's newest checkpoint, so a job started again after an interruption picks up where the
last one stopped.
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
from spectral_jax.train import train_and_evaluate


def run_group(root: str, runs: Sequence[tuple[str, ml_collections.ConfigDict]], *, job_id: str = "",
              log: str = "", quiet: bool = False) -> dict[str, str]:
    """Runs every (name, config) of the group in ROOT/<name>; -> name -> "done" | "failed"."""
    return {name: run_one(Path(root), name, config, job_id=job_id, log=log, quiet=quiet) for name, config in runs}


def run_one(root: Path, name: str, config: ml_collections.ConfigDict, *, job_id: str = "", log: str = "",
            quiet: bool = False) -> str:
    """Train -> analyse -> report one run, recording its state in ROOT/jobs/state/<name>.json
    (by process 0 only, when the run spans several processes)."""
    main = parallel.is_main_process()
    record = (lambda **fields: state_lib.write_state(root, name, **fields)) if main else (lambda **fields: None)
    attempt = int(state_lib.read_state(root, name).get("attempt", 0)) + 1
    t0 = time.time()
    record(state="running", attempt=attempt, started=t0, host=socket.gethostname(), pid=os.getpid(),
           job_id=job_id, log=log, error="", seconds=None)
    workdir = root / name
    try:
        train_and_evaluate(config, workdir, quiet=quiet)
        analyze_run(workdir, config, quiet=quiet)
        write_report(workdir, quiet=quiet)
    except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
        traceback.print_exc()
        error = traceback.format_exception_only(type(e), e)[-1].strip()
        record(state="failed", error=error, seconds=time.time() - t0)
        return "failed"
    record(state="done", seconds=time.time() - t0)
    return "done"
