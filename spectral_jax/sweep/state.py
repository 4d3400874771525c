"""Where each run of a sweep stands, read from files only (so any later command, on any host,
sees the same thing), and the table the sweep ends with.

    ROOT/jobs/state/<run>.json   written by the job running the run: running -> done | failed,
                                 with attempt, host, pid, job id, seconds, the error's last line
    ROOT/jobs/submitted.json     written by `sweep`: run -> job id, executor, log file

A run is *done* when its own files say so: summary.json with `last_step` equal to its total
(or an early stop), report/summary.json, and a config.json equal to the planned config. A run
whose job is alive is *running* (or *pending* while queued); a run whose job died without a
word is *interrupted*. Failed, interrupted and new runs are (re)submitted; done ones skipped.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from spectral_jax import config as config_lib
from spectral_jax import io

JOBS_DIR = "jobs"
TODO = ("new", "failed", "interrupted")


def jobs_dir(root: str | Path) -> Path:
    return Path(root) / JOBS_DIR


def state_path(root: str | Path, name: str) -> Path:
    return jobs_dir(root) / "state" / f"{name}.json"


def read_state(root: str | Path, name: str) -> dict:
    path = state_path(root, name)
    return io.read_json(path) if path.exists() else {}


def write_state(root: str | Path, name: str, **fields) -> dict:
    """Updates the run's state record (only the job running the run writes it)."""
    record = {**read_state(root, name), **fields, "updated": time.time()}
    io.write_json(state_path(root, name), record)
    return record


def read_submitted(root: str | Path) -> dict[str, dict]:
    path = jobs_dir(root) / "submitted.json"
    return io.read_json(path) if path.exists() else {}


def record_submitted(root: str | Path, entries: dict[str, dict]) -> None:
    """Adds run -> {job_id, executor, log, time} entries to submitted.json."""
    io.write_json(jobs_dir(root) / "submitted.json", {**read_submitted(root), **entries})


def is_complete(workdir: str | Path, config) -> bool:
    """The run in `workdir` has trained to its end (or stopped early), been analysed and
    reported, with the planned `config`."""
    workdir = Path(workdir)
    paths = [workdir / "summary.json", workdir / "report" / "summary.json", workdir / "config.json"]
    if not all(p.exists() for p in paths):
        return False
    summary = io.read_json(paths[0])
    if summary.get("last_step") != summary.get("total_steps") and not summary.get("stopped_early"):
        return False
    return not config_lib.diff(config_lib.config_from_json(paths[2]), config)


def process_alive(record: dict) -> bool:
    """The job process recorded in a state record still runs on this host."""
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    pid = int(record["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the id
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a killed job whose parent died too can linger as a zombie nobody reaps
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): the signal test above is all there is
        return True


def status(root: str | Path, run, submitted: dict, job_alive: Callable[[str], bool]) -> tuple[str, dict]:
    """-> (done | running | pending | failed | interrupted | new, the run's state record).

    `job_alive(job_id)` asks the scheduler about a submitted job (SLURM)."""
    record = read_state(root, run.name)
    if is_complete(Path(root) / run.name, run.config):
        return "done", record
    job = submitted.get(run.name, {})
    if record.get("state") == "running":
        alive = process_alive(record) or (job.get("executor") == "slurm" and job_alive(job.get("job_id", "")))
        return ("running" if alive else "interrupted"), record
    if job.get("executor") == "slurm" and job.get("time", 0) > record.get("updated", 0) and job_alive(job["job_id"]):
        return "pending", record
    if record.get("state") in ("failed", "done"):  # done but its files are gone or its config changed: redo
        return ("failed" if record["state"] == "failed" else "new"), record
    return "new", record


def format_table(rows: list[dict]) -> str:
    """rows: {run, state, seconds, attempt, note} -> an aligned table with a count per state."""
    head = ("run", "state", "time", "try", "note")
    lines = [(r["run"], r["state"], _duration(r.get("seconds")), str(r.get("attempt") or ""), r.get("note", ""))
             for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    widths[-1] = 0
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    total = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths[:-1]] + ["----"]), *map(fmt, lines),
                      f"{len(rows)} runs: {total}"])


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"
