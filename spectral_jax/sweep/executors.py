"""Submitting run groups through submitit: on this machine (`local`, a bounded pool of job
processes), in this process (`debug`), or to SLURM (`slurm`, one job array per stage).

- local: at most `max_parallel` jobs alive at once (default: one per visible GPU, each job
  seeing only its GPU; on a CPU-only machine one job at a time per 8 cores, at least one);
  the command waits for every run. A sweep of 1,000 runs keeps at most `max_parallel` job
  processes.
- slurm: every group becomes one task of a job array (`--array=0-N%array_parallelism`), so
  the scheduler holds the queue and no process of ours stays alive; a stage of runs that
  needs another stage's results (distillation students) waits for it with
  `--dependency=afterany:<array>`. The command returns once submitted; run it again to see
  the states (finished runs are skipped, failed and interrupted ones submitted again).
- debug: submitit's DebugExecutor, the same jobs one after another in this process.

The job callable (`GroupJob`) can be checkpointed: SLURM requeues a job that times out or is
preempted, and training resumes from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from spectral_jax import parallel
from spectral_jax.errors import ConfigError, UserError
from spectral_jax.sweep import job as job_lib
from spectral_jax.sweep import state as state_lib
from spectral_jax.sweep.runs import Run

EXECUTORS = ("local", "slurm", "debug")
LOCAL_TIME_MIN = 7 * 24 * 60  # submitit's local executor kills a job after its time limit: make it a week
SLURM_TIME_MIN = 24 * 60
CPU_CORES_PER_JOB = 8  # XLA:CPU uses every core; two runs on a few cores only take turns


@dataclasses.dataclass
class Options:
    """How to submit: the executor and its resources (the `sweep` command's flags)."""

    executor: str = "local"
    max_parallel: int = 0  # local: jobs alive at once; 0 = one per GPU, else one per 8 CPU cores
    group_size: int = 1  # runs differing only in vmappable keys that share a job (groups.py)
    time_min: int = 0  # time limit per job; 0 = a week locally, 24 h on SLURM
    partition: str = ""
    gpus_per_node: int = 0
    nodes: int = 1
    tasks_per_node: int = 1  # processes per node of a multi-node run (jax.distributed)
    cpus_per_task: int = 0
    mem_gb: int = 0
    array_parallelism: int = 64  # SLURM array tasks running at once
    setup: tuple[str, ...] = ()  # shell lines run before each SLURM job (module load, activate a venv)
    slurm_args: tuple[str, ...] = ()  # extra sbatch flags, KEY=VALUE (account=abc, qos=high)
    poll_s: float = 0.5

    def check(self) -> None:
        """A ConfigError for a value no executor can use (before anything is submitted)."""
        if self.executor not in EXECUTORS:
            raise ConfigError(f"Unknown executor {self.executor!r}; valid: {', '.join(EXECUTORS)}.")
        for name, low in (("max_parallel", 0), ("group_size", 1), ("time_min", 0), ("gpus_per_node", 0),
                          ("nodes", 1), ("tasks_per_node", 1), ("cpus_per_task", 0), ("mem_gb", 0),
                          ("array_parallelism", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.removesuffix('_min')} must be >= {low}, got {getattr(self, name)}.")
        bad = [a for a in self.slurm_args if "=" not in a or not a.split("=", 1)[0]]
        if bad:
            raise ConfigError(f"--slurm_arg takes KEY=VALUE (an sbatch flag without its dashes), got {bad[0]!r}.")


def require_submitit():
    """The submitit module, imported on first use: importing it reconfigures the process's
    logging (it closes the handlers already installed), so a mere `import spectral_jax.cli` or a
    notebook that never sweeps must not pay for it."""
    try:
        return importlib.import_module("submitit")
    except ImportError:
        raise UserError("spectral-jax sweep submits its runs through submitit, which is not installed: "
                        "pip install 'spectral-jax[launch]' (or pip install submitit).") from None


class GroupJob:
    """The callable a job runs: `run_group` on (root, [(name, config)]). Its `checkpoint`
    makes submitit requeue it on a SLURM timeout or preemption (training resumes itself).
    `shares_gpu`: other jobs run on its GPU, so it must not take most of the GPU's memory up
    front, as JAX does by default (set before the job's first device use; a user's setting wins)."""

    def __init__(self, shares_gpu: bool = False):
        self.shares_gpu = shares_gpu

    def __call__(self, root: str, runs, quiet: bool = False) -> dict[str, str]:
        if self.shares_gpu:
            os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env = require_submitit().JobEnvironment()
        if env.num_tasks > 1:  # a multi-node run: every task joins one jax.distributed cluster
            parallel.initialize_distributed()
        log = str(env.paths.stdout) if "SUBMITIT_FOLDER" in os.environ else ""  # the debug executor has no log
        return job_lib.run_group(root, runs, job_id=str(env.job_id), log=log, quiet=quiet)

    def checkpoint(self, *args, **kwargs):
        return require_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def logs_folder(root: str | Path) -> Path:
    return state_lib.jobs_dir(root) / "logs" / "%j"


def local_gpus() -> list[int]:
    """Indices of this machine's GPUs (CUDA_VISIBLE_DEVICES, else nvidia-smi), without starting jax."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(x) for x in visible.split(",") if x.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(range(sum(line.startswith("GPU ") for line in out.splitlines())))


def default_parallel(gpus: Sequence[int]) -> int:
    return len(gpus) if gpus else max(1, (os.cpu_count() or 1) // CPU_CORES_PER_JOB)


# --------------------------------------------------------------------------------------
# local and debug: a bounded pool that waits for every run


def run_pool(root: Path, groups: Sequence[list[Run]], opts: Options, current: dict[str, str],
             log: Callable[[str], None]) -> dict[str, tuple[str, str]]:
    """Runs the groups, at most `max_parallel` at once, a group only once the runs it depends
    on are done. `current`: every run's state before this command (for dependencies).
    -> name -> (state, note) for every run of `groups`."""
    submitit = require_submitit()
    debug = opts.executor == "debug"
    folder = logs_folder(root)
    executor = submitit.DebugExecutor(folder) if debug else submitit.LocalExecutor(folder)
    if not debug:
        executor.update_parameters(timeout_min=opts.time_min or LOCAL_TIME_MIN)
    gpus = [] if debug else local_gpus()
    jobs_on = {gpu: 0 for gpu in gpus}  # GPU -> jobs running on it
    slots = 1 if debug else (opts.max_parallel or default_parallel(gpus))
    waiting, active, outcome = list(groups), {}, {}
    in_flight = {r.name for g in groups for r in g}
    try:
        while waiting or active:
            for job, (group, gpu) in list(active.items()):
                if job.done():
                    del active[job]
                    if gpu is not None:
                        jobs_on[gpu] -= 1
                    for run in group:
                        outcome[run.name] = _finished(root, run, job)
                        current[run.name] = outcome[run.name][0]
                        in_flight.discard(run.name)
                        log(f"  {outcome[run.name][0]:<6} {run.name}")
            for group in list(waiting):
                if len(active) >= slots:
                    break
                unmet = [d for r in group for d in r.depends_on if current.get(d) != "done"]
                if any(d in in_flight for d in unmet):
                    continue  # a run it needs is still to come in this pool
                if unmet:  # a run it needs failed, or runs elsewhere: this group cannot start now
                    waiting.remove(group)
                    for run in group:
                        outcome[run.name] = ("failed", f"needs {unmet[0]}, which is {current.get(unmet[0], 'missing')}")
                        current[run.name] = "failed"
                        in_flight.discard(run.name)
                    continue
                waiting.remove(group)
                # Every job is pinned to one GPU, the least busy (shared only when --max_parallel
                # asks for more jobs than there are GPUs).
                gpu = min(jobs_on, key=lambda g: (jobs_on[g], g)) if jobs_on else None
                if gpu is not None:
                    jobs_on[gpu] += 1
                    executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
                job = executor.submit(GroupJob(shares_gpu=slots > len(gpus) > 0), str(root),
                                      [(r.name, r.config) for r in group], debug)
                active[job] = (group, gpu)
                state_lib.record_submitted(root, {r.name: {"job_id": str(job.job_id), "executor": opts.executor,
                                                            "log": str(job.paths.stdout), "time": time.time()}
                                                  for r in group})
                shared = f", shared by {jobs_on[gpu]} jobs" if gpu is not None and jobs_on[gpu] > 1 else ""
                log(f"  start  {', '.join(r.name for r in group)}" + (f" (GPU {gpu}{shared})" if gpu is not None else ""))
            if active:
                time.sleep(opts.poll_s)
    except KeyboardInterrupt:
        for job in active:
            job.cancel(check=False)
        for group, _ in active.values():
            for run in group:
                outcome[run.name] = ("interrupted", "the sweep was interrupted; run it again to resume")
        for group in waiting:
            for run in group:
                outcome[run.name] = ("new", "not started: the sweep was interrupted")
        raise SweepInterrupted(outcome)
    return outcome


class SweepInterrupted(Exception):
    """Ctrl-C during a local sweep; carries the runs' states so far."""

    def __init__(self, outcome: dict[str, tuple[str, str]]):
        super().__init__("interrupted")
        self.outcome = outcome


def _finished(root: Path, run: Run, job) -> tuple[str, str]:
    """A finished job's verdict on one of its runs, from the state record the job wrote."""
    record = state_lib.read_state(root, run.name)
    if record.get("state") == "done":
        return "done", ""
    if record.get("state") == "failed":
        return "failed", record.get("error", "")
    return "failed", f"the job ended without reporting (killed?); see {job.paths.stdout}"


# --------------------------------------------------------------------------------------
# slurm: job arrays, one per stage


def slurm_parameters(opts: Options, map_count: int | None = None) -> dict:
    """sbatch parameters (submitit's names) for `opts`."""
    params = {"job_name": "spectral-jax", "time": opts.time_min or SLURM_TIME_MIN, "nodes": opts.nodes,
              "ntasks_per_node": opts.tasks_per_node, "array_parallelism": opts.array_parallelism}
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_node:
        params["gpus_per_node"] = opts.gpus_per_node
    if opts.cpus_per_task:
        params["cpus_per_task"] = opts.cpus_per_task
    if opts.mem_gb:
        params["mem"] = f"{opts.mem_gb}GB"
    if opts.setup:
        params["setup"] = list(opts.setup)
    extra = dict(arg.split("=", 1) for arg in opts.slurm_args)
    if extra:
        params["additional_parameters"] = extra
    if map_count is not None:
        params["map_count"] = map_count
    return params


def stages(groups: Sequence[list[Run]]) -> list[list[list[Run]]]:
    """Groups by stage (a group's stage is its runs' highest)."""
    by_stage: dict[int, list] = {}
    for group in groups:
        by_stage.setdefault(max(r.stage for r in group), []).append(group)
    return [by_stage[s] for s in sorted(by_stage)]


def submit_slurm(root: Path, groups: Sequence[list[Run]], opts: Options, submitted: dict[str, dict],
                 log: Callable[[str], None]) -> dict[str, tuple[str, str]]:
    """Submits one job array per stage; -> name -> ("pending", job id)."""
    submitit = require_submitit()
    try:
        executor = submitit.SlurmExecutor(folder=logs_folder(root))
    except RuntimeError as e:  # no `srun` on PATH
        raise UserError(f"--executor slurm: {e} (use --dry_run to see the submission on a machine without SLURM).")
    executor.update_parameters(**slurm_parameters(opts))
    outcome, array_of = {}, {}
    for stage_groups in stages(groups):
        needs = {d for g in stage_groups for r in g for d in r.depends_on}
        after = sorted({array_of.get(d) or submitted.get(d, {}).get("job_id", "").split("_")[0] for d in needs} - {""})
        executor.update_parameters(dependency=f"afterany:{':'.join(after)}" if after else None)
        n = len(stage_groups)
        jobs = executor.map_array(GroupJob(), [str(root)] * n, [[(r.name, r.config) for r in g] for g in stage_groups])
        entries = {}
        for job, group in zip(jobs, stage_groups):
            for run in group:
                array_of[run.name] = str(job.job_id).split("_")[0]
                entries[run.name] = {"job_id": str(job.job_id), "executor": "slurm", "log": str(job.paths.stdout),
                                     "time": time.time()}
                outcome[run.name] = ("pending", f"job {job.job_id}")
        state_lib.record_submitted(root, entries)
        log(f"  submitted {n} job(s) as array {array_of[stage_groups[0][0].name]}"
            + (f", after {', '.join(after)}" if after else ""))
    return outcome


def slurm_alive(root: Path) -> Callable[[str], bool]:
    """job id -> whether SLURM still has it queued or running (unknown counts as alive)."""
    if importlib.util.find_spec("submitit") is None or not shutil.which("sacct"):
        return lambda job_id: bool(job_id)
    cache: dict[str, bool] = {}

    def alive(job_id: str) -> bool:
        if not job_id:
            return False
        if job_id not in cache:
            job = require_submitit().SlurmJob(folder=logs_folder(root), job_id=job_id)
            cache[job_id] = not job.watcher.is_done(job_id, mode="force")
        return cache[job_id]

    return alive


def describe_submission(root: Path, groups: Sequence[list[Run]], opts: Options) -> str:
    """What `--dry_run` prints: the local pool, or each stage's sbatch script."""
    if opts.executor != "slurm":
        gpus = local_gpus()
        slots = 1 if opts.executor == "debug" else (opts.max_parallel or default_parallel(gpus))
        where = "in this process" if opts.executor == "debug" else \
            f"on this machine, {slots} job(s) at a time" + (f", one GPU each ({len(gpus)} GPUs)" if gpus else "")
        return f"{len(groups)} job(s) {where}."
    submitit_slurm = require_submitit().slurm.slurm
    command = " ".join([sys.executable, "-u -m submitit.core._submit", str(logs_folder(root))])
    parts = []
    for i, stage_groups in enumerate(stages(groups)):
        text = submitit_slurm._make_sbatch_string(command=command, folder=logs_folder(root),
                                                  **slurm_parameters(opts, map_count=len(stage_groups)))
        after = "  (submitted with --dependency=afterany:<the previous array>)" if i else ""
        parts.append(f"# stage {i}: {len(stage_groups)} job(s) as one array{after}\n{text}")
    return "\n".join(parts)
