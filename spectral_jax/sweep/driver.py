"""`run_sweep`: expand an experiment's sweep, skip what is done, submit the rest, print the table.

    expand + validate every run (errors before anything is written or submitted)
    -> ROOT/sweep.json (atomically) -> each run's state -> submit new, failed and interrupted runs
    -> a table of run states; exit status 1 if any run failed

ROOT holds one sweep: running another experiment's config into it is an error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from spectral_jax import config as config_lib
from spectral_jax import io
from spectral_jax.errors import ConfigError
from spectral_jax.report.aggregate import SWEEP_FILE, read_sweep
from spectral_jax.sweep import executors
from spectral_jax.sweep import state as state_lib
from spectral_jax.sweep.groups import group_runs
from spectral_jax.sweep.runs import Plan, expand


def run_sweep(spec: str, root: str | Path, opts: executors.Options | None = None, *,
              overrides: Sequence[tuple[str, str]] = (), dry_run: bool = False,
              log: Callable[[str], None] = print) -> int:
    """Runs the sweep of the config file `spec` in `root`; -> 0, 1 if any run failed, 130 if interrupted."""
    opts = opts or executors.Options()
    opts.check()
    root = Path(root).absolute()
    t0 = time.perf_counter()
    plan = expand(spec, root, overrides)
    if dry_run:
        _check_root(root, plan)
        return _sweep(plan, root, opts, dry_run, log, t0)
    # One driver per root (its jobs take their runs' own locks), which checks the root it holds.
    # It cleans only what it alone writes: jobs/ top level, not the jobs' state files.
    with io.RunLock(root, "sweep", owns=state_lib.JOBS_DIR, recursive=False):
        _check_root(root, plan)
        return _sweep(plan, root, opts, dry_run, log, t0)


def _sweep(plan: Plan, root: Path, opts: executors.Options, dry_run: bool, log: Callable[[str], None],
           t0: float) -> int:
    submitted = state_lib.read_submitted(root)
    alive = executors.slurm_alive(root)
    states = {r.name: state_lib.status(root, r, submitted, alive) for r in plan.runs}
    todo = [r for r in plan.runs if states[r.name][0] in state_lib.TODO]
    groups = group_runs(todo, opts.group_size)
    log(f"{plan.spec}: {len(plan.runs)} runs in {root}: {len(plan.runs) - len(todo)} done or under way, "
        f"{len(todo)} to run in {len(groups)} job(s).")
    if dry_run:
        for run in plan.runs:
            log(f"  {states[run.name][0]:<11} {run.name}  {run.overrides}")
        log(executors.describe_submission(root, groups, opts))
        return 0
    if groups:
        executors.require_submitit()  # a missing extra is an error before anything is written
    io.write_json(root / SWEEP_FILE, plan.record())
    current = {name: s for name, (s, _) in states.items()}
    outcome: dict[str, tuple[str, str]] = {}
    interrupted = None
    if groups and opts.executor == "slurm":
        outcome = executors.submit_slurm(root, groups, opts, submitted, log)
    elif groups:
        try:
            outcome = executors.run_pool(root, groups, opts, current, log)
        except executors.SweepInterrupted as e:
            outcome, interrupted = e.outcome, e
    rows = [_row(root, run, states[run.name], outcome.get(run.name)) for run in plan.runs]
    log(state_lib.format_table(rows))
    log(f"sweep finished in {time.perf_counter() - t0:.1f} s; `spectral-jax report --root {root}` gathers the results.")
    if interrupted is not None:
        return 130  # the shell's status for Ctrl-C: the jobs were stopped, the same command resumes them
    return 1 if any(r["state"] == "failed" for r in rows) else 0


def _check_root(root: Path, plan: Plan) -> None:
    if (root / SWEEP_FILE).exists():
        previous = read_sweep(root)
        if not same_spec(str(previous.get("config")), plan.spec):
            raise ConfigError(f"{root} holds the sweep of {previous.get('config')!r}, not {plan.spec!r}: "
                              f"use another --root.")


def same_spec(a: str, b: str) -> bool:
    """Whether two spellings of `file.py[:ARG]` name the same config (from another working
    directory, with or without `configs/`, through `..`): the same resolved file, or, where one
    no longer resolves, the same file name; and the same ARG."""
    (path_a, _, arg_a), (path_b, _, arg_b) = a.partition(":"), b.partition(":")
    if arg_a != arg_b:
        return False
    try:
        return config_lib.resolve_config_path(path_a).resolve() == config_lib.resolve_config_path(path_b).resolve()
    except ConfigError:
        return Path(path_a).name == Path(path_b).name


def _row(root: Path, run, before: tuple[str, dict], after: tuple[str, str] | None) -> dict:
    """The table row of a run: its state after this command, time, attempt, note."""
    state, record = before
    note = {"done": "skipped (done)", "running": f"running elsewhere (pid {record.get('pid')} on {record.get('host')})",
            "pending": "queued"}.get(state, record.get("error", ""))
    if after is not None:
        record = state_lib.read_state(root, run.name)
        state, note = after
    return {"run": run.name, "state": state, "seconds": record.get("seconds"), "attempt": record.get("attempt"),
            "note": note}
