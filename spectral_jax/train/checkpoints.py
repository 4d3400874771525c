"""Orbax checkpoints of a run: WORKDIR/checkpoints/<step>/ with two items,

- "variables": {"params", "batch_stats"}   (all the analysis needs), and
- "train":     {"opt_state", "step"}       (what resuming needs on top).

A step directory counts only once orbax has finalized it (`_CHECKPOINT_METADATA` present):
a save killed half-way leaves a directory that `latest_step()` would still report, so it is
skipped with a warning naming it. Restores always go into an abstract target.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from spectral_jax import parallel

FINALIZED_MARKER = "_CHECKPOINT_METADATA"


def checkpoint_dir(workdir: str | Path) -> Path:
    return Path(workdir).absolute() / "checkpoints"


def step_dirs(workdir: str | Path) -> list[int]:
    """All numeric step directories, finalized or not, ascending."""
    root = checkpoint_dir(workdir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def valid_steps(workdir: str | Path, warn: bool = True) -> list[int]:
    """Finalized checkpoint steps, ascending; unfinalized ones are reported and skipped."""
    root, good = checkpoint_dir(workdir), []
    for step in step_dirs(workdir):
        if (root / str(step) / FINALIZED_MARKER).exists():
            good.append(step)
        elif warn:
            warnings.warn(f"Skipping damaged or unfinished checkpoint {root / str(step)} "
                          f"(no {FINALIZED_MARKER}); using an earlier one.", stacklevel=2)
    return good


class Checkpointer:
    """Saves at the end of every epoch; keeps the latest `keep` plus every `permanent_every` steps.

    `save` copies the state to the host (explicitly) and hands it to one background thread that
    runs orbax, so training goes on while the checkpoint is written; `wait` and `close` join it
    and re-raise any error it met.
    """

    def __init__(self, workdir: str | Path, keep: int = 0, permanent_every: int = 0):
        policies = [pp.LatestN(keep) if keep > 0 else pp.PreserveAll()]
        if permanent_every > 0:
            policies.append(pp.EveryNSteps(permanent_every))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies), create=True,
            enable_async_checkpointing=False,  # saves already run in our own background thread
        )
        self.manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                             item_names=("variables", "train"))
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[Future] = []

    def save(self, step: int, state: dict[str, Any]) -> None:
        self._check()
        host = parallel.to_host(state)  # the device buffers may be donated to the next step
        self._pending.append(self._thread.submit(self._save, step, host))

    def _save(self, step: int, host: dict[str, Any]) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            variables=ocp.args.StandardSave({"params": host["params"], "batch_stats": host["batch_stats"]}),
            train=ocp.args.StandardSave({"opt_state": host["opt_state"], "step": host["step"]}),
        ))

    def _check(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()  # re-raises a failed save

    def wait(self) -> None:
        for f in self._pending:
            f.result()
        self._pending = []
        self.manager.wait_until_finished()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._thread.shutdown(wait=True)
            self.manager.close()


def restore_state(workdir: str | Path, step: int, abstract_state: dict[str, Any]) -> dict[str, Any]:
    """The full train state at `step`, shaped like `abstract_state`."""
    got = _restore(workdir, step, variables={"params": abstract_state["params"],
                                              "batch_stats": abstract_state["batch_stats"]},
                   train={"opt_state": abstract_state["opt_state"], "step": abstract_state["step"]})
    return {**got["variables"], **got["train"]}


def restore_latest_state(workdir: str | Path, abstract_state: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """(step, state) of the newest checkpoint that restores; damaged ones are skipped with a
    warning naming them. (0, None) when there is none."""
    for step in reversed(valid_steps(workdir)):
        try:
            return step, restore_state(workdir, step, abstract_state)
        except Exception as e:  # noqa: BLE001 - any failure to read means "damaged"
            warnings.warn(f"Skipping damaged checkpoint {checkpoint_dir(workdir) / str(step)} "
                          f"({type(e).__name__}: {str(e)[:200]}); using an earlier one.", stacklevel=2)
    return 0, None


def set_aside_after(workdir: str | Path, step: int) -> list[Path]:
    """Renames step directories newer than `step` (damaged or unfinished ones that resuming
    skipped) to `damaged_<step>_<n>`, so new saves can use their step numbers; nothing is deleted."""
    moved, root = [], checkpoint_dir(workdir)
    for s in step_dirs(workdir):
        if s > step:
            n = 0
            while (root / f"damaged_{s}_{n}").exists():
                n += 1
            (root / str(s)).rename(root / f"damaged_{s}_{n}")
            moved.append(root / f"damaged_{s}_{n}")
    return moved


def restore_variables(workdir: str | Path, step: int, abstract_variables: dict[str, Any]) -> dict[str, Any]:
    """Only {"params", "batch_stats"} at `step` (what analysis needs)."""
    return _restore(workdir, step, variables=abstract_variables)["variables"]


def _restore(workdir, step, **targets):
    abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, t) for name, t in targets.items()}
    with ocp.CheckpointManager(checkpoint_dir(workdir), item_names=tuple(targets),
                               options=ocp.CheckpointManagerOptions(create=False)) as manager:
        try:
            return manager.restore(step, args=ocp.args.Composite(
                **{name: ocp.args.StandardRestore(t) for name, t in abstract.items()}))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"Checkpoint {checkpoint_dir(workdir) / str(step)} does not match the model built from "
                f"{Path(workdir) / 'config.json'}: {e}") from e
