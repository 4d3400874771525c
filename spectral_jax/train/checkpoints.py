"""Orbax checkpoints of a run: WORKDIR/checkpoints/<step>/ with two items,

- "variables": {"params", "batch_stats"}   (all the analysis needs), and
- "train":     {"opt_state", "step"}       (what resuming needs on top),

and, as orbax custom metadata, what identifies them: the model name, its parameter count, a
fingerprint of the variables' and of the train state's tree (paths, shapes, dtypes), and the
metrics.jsonl records up to that step (so resuming rebuilds the log from what the checkpoint
proves).

Writes (the trainer only, docs/run_directory.md): a step is written into
`<step>.orbax-checkpoint-tmp`, every file flushed, renamed to `<step>` and the folder flushed; a
step the keep policy drops is first renamed into `_deleted/` and only then deleted. So a folder
named like a step is complete (a killed save leaves only a temporary folder, which the next
trainer removes), and nothing half-deleted looks like a step. Reads (anyone, e.g. `analyze`
beside a live trainer) use a manager that is only asked for metadata and restores, check the
identity before reading arrays, and turn any failure into one line naming the checkpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from spectral_jax import io, parallel
from spectral_jax.errors import CheckpointMismatch, DamagedFile, OutOfDisk, one_line

ITEMS = ("variables", "train")
FINALIZED_MARKER = "_CHECKPOINT_METADATA"
TRASH = "_deleted"  # steps the keep policy dropped, renamed here before they are deleted
TMP_SUFFIX = ocp.path.atomicity_types.TMP_DIR_SUFFIX
DAMAGED_WAY_OUT = "Training skips it and resumes from the one before (spectral-jax train --workdir W); " \
                  "or move it out of checkpoints/."


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


def fingerprint(tree: Any) -> str:
    """A short hash of a pytree's structure: every leaf's path, shape and dtype."""
    leaves = [(jax.tree_util.keystr(path), list(np.shape(x)), str(x.dtype))
              for path, x in jax.tree_util.tree_leaves_with_path(tree)]
    return hashlib.sha256(json.dumps(leaves).encode()).hexdigest()[:16]


def identity(model: str, abstract_state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records about the model that made it (checked on every restore)."""
    variables = {"params": abstract_state["params"], "batch_stats": abstract_state["batch_stats"]}
    return {"model": model, "num_params": _num_params(variables), "variables_fingerprint": fingerprint(variables),
            "state_fingerprint": fingerprint(abstract_state)}


class _DurableRename(ocp.path.atomicity.AtomicRenameTemporaryPath):
    """Orbax's rename-on-commit, with every file of a step flushed before the rename publishes
    it and the folder after; the fault points of the crash tests sit at the step's phases."""

    def _is_step(self) -> bool:
        return self.get_final().name.isdigit()  # items (variables/, train/) use this class too

    async def create(self):
        path = await super().create()
        if self._is_step():
            io.fault_point("checkpoint.begin")
        return path

    async def finalize(self):
        if not self._is_step():
            return await super().finalize()
        await asyncio.to_thread(io.fsync_tree, self.get())
        io.fault_point("checkpoint.commit")
        await super().finalize()  # orbax: commit time in the metadata, commit_success.txt, rename
        await asyncio.to_thread(_fsync_top, self.get_final())


def _fsync_top(step_dir: Path) -> None:
    """Flushes what orbax wrote at the commit (metadata, commit file) and the renames."""
    for p in Path(step_dir).iterdir():
        if p.is_file():
            io.fsync_file(p)
    io.fsync_dir(step_dir)
    io.fsync_dir(Path(step_dir).parent)


class Checkpointer:
    """Saves at the end of every epoch; keeps the latest `keep` plus every `permanent_every` steps.

    `save` copies the state to the host (explicitly, on the calling thread) and hands it to one
    background thread that only runs orbax's file work, so training goes on while the checkpoint
    is written; `wait` and `close` join it and re-raise any error it met (a full disk as
    `OutOfDisk`, after removing the partial save). With several processes orbax's save meets the
    other processes at barriers, which may be device collectives: there the save runs on the
    calling thread, so all device work keeps one thread and one order."""

    def __init__(self, workdir: str | Path, keep: int = 0, permanent_every: int = 0,
                 identity: dict[str, Any] | None = None):
        policies = [pp.LatestN(keep) if keep > 0 else pp.PreserveAll()]
        if permanent_every > 0:
            policies.append(pp.EveryNSteps(permanent_every))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies), create=True,
            enable_async_checkpointing=False,  # saves already run in our own background thread
            temporary_path_class=_DurableRename, todelete_subdir=TRASH,
        )
        self.root = checkpoint_dir(workdir)
        self.identity = dict(identity or {})
        self.manager = ocp.CheckpointManager(self.root, options=options, item_names=ITEMS)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[Future] = []

    def save(self, step: int, state: dict[str, Any], records: Sequence[dict] = ()) -> None:
        """Saves `state` at `step` with the metrics `records` up to it (in the metadata)."""
        self._check()
        host = parallel.to_host(state)  # the device buffers may be donated to the next step
        metadata = {**self.identity, "records": list(records)}
        if jax.process_count() > 1:
            self._save(step, host, metadata)
        else:
            self._pending.append(self._thread.submit(self._save, step, host, metadata))

    def _save(self, step: int, host: dict[str, Any], metadata: dict) -> None:
        try:
            self.manager.save(step, custom_metadata=metadata, args=ocp.args.Composite(
                variables=ocp.args.StandardSave({"params": host["params"], "batch_stats": host["batch_stats"]}),
                train=ocp.args.StandardSave({"opt_state": host["opt_state"], "step": host["step"]}),
            ))
            io.fault_point("checkpoint.saved")
            shutil.rmtree(self.root / TRASH, ignore_errors=True)
        except Exception as e:
            for partial in self.root.glob(f"{step}{TMP_SUFFIX}*"):
                shutil.rmtree(partial, ignore_errors=True)
            if io.is_out_of_space(e):
                last = valid_steps(self.root.parent, warn=False)
                raise OutOfDisk(f"No space left on device while saving checkpoint {self.root / str(step)}: the partial "
                                f"save was removed and the last complete checkpoint is "
                                f"{self.root / str(last[-1]) if last else '(none yet)'}. Free space on that file "
                                f"system and rerun the same command: the run resumes from it.") from e
            raise

    def _check(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()  # re-raises a failed save

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()
        self.manager.wait_until_finished()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._thread.shutdown(wait=True)
            self.manager.close()


def restore_state(workdir: str | Path, step: int, abstract_state: dict[str, Any],
                  model: str | None = None) -> dict[str, Any]:
    """The full train state at `step`, shaped like `abstract_state`."""
    return _restore_state(workdir, step, abstract_state, model)[0]


def _restore_state(workdir, step, abstract_state, model) -> tuple[dict[str, Any], list[dict]]:
    """(the train state, the metrics records saved with it: [] for checkpoints older than that)."""
    variables = {"params": abstract_state["params"], "batch_stats": abstract_state["batch_stats"]}
    got, saved = _restore(workdir, step, model, abstract_state, variables=variables,
                          train={"opt_state": abstract_state["opt_state"], "step": abstract_state["step"]})
    return {**got["variables"], **got["train"]}, list(saved.get("records", []))


def restore_latest_state(workdir: str | Path, abstract_state: dict[str, Any], model: str | None = None,
                         at_most: int | None = None) -> tuple[int, dict[str, Any] | None, list[dict]]:
    """(step, state, records) of the newest checkpoint (at step `at_most` or before) that
    restores; damaged ones are skipped with a warning naming them. (0, None, []) when there is
    none. A checkpoint of another model is an error, not damage."""
    for step in reversed([s for s in valid_steps(workdir) if at_most is None or s <= at_most]):
        try:
            return step, *_restore_state(workdir, step, abstract_state, model)
        except DamagedFile as e:
            warnings.warn(f"Skipping damaged checkpoint {checkpoint_dir(workdir) / str(step)} ({e.problem}); "
                          f"using an earlier one.", stacklevel=2)
    return 0, None, []


def discard_unfinished(workdir: str | Path) -> list[Path]:
    """Deletes what killed trainers left in checkpoints/: temporary step folders (saves that never
    got their rename) and steps the keep policy had already moved to `_deleted/`. Only the
    trainer, holding the run directory's lock, may call this."""
    root = checkpoint_dir(workdir)
    found = [*root.glob(f"*{TMP_SUFFIX}*"), root / TRASH] if root.is_dir() else []
    found = [p for p in found if p.exists()]
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return found


def set_aside_after(workdir: str | Path, step: int) -> list[Path]:
    """Renames step directories newer than `step` (damaged or unfinished ones that resuming
    skipped) to `damaged_<step>_<n>`, so new saves can use their step numbers; nothing is
    deleted. Only the trainer, holding the run directory's lock, may call this."""
    moved, root = [], checkpoint_dir(workdir)
    for s in step_dirs(workdir):
        if s > step:
            n = 0
            while (root / f"damaged_{s}_{n}").exists():
                n += 1
            (root / str(s)).rename(root / f"damaged_{s}_{n}")
            moved.append(root / f"damaged_{s}_{n}")
    return moved


def restore_variables(workdir: str | Path, step: int, abstract_variables: dict[str, Any],
                      model: str | None = None) -> dict[str, Any]:
    """Only {"params", "batch_stats"} at `step` (what analysis needs). `model`, the config's model
    name, makes a checkpoint of another model say so."""
    return _restore(workdir, step, model, None, variables=abstract_variables)[0]["variables"]


def _reader(workdir) -> ocp.CheckpointManager:
    """A manager that is only asked for metadata and restores: readers never write, rename or
    delete (orbax's read_only option would do the same, with a warning per checkpoint)."""
    handlers = {name: ocp.StandardCheckpointHandler() for name in ITEMS}
    return ocp.CheckpointManager(checkpoint_dir(workdir), item_handlers=handlers,
                                 options=ocp.CheckpointManagerOptions(create=False))


def _metadata(manager: ocp.CheckpointManager, workdir, step: int) -> dict:
    try:
        return dict(manager.metadata(step).custom_metadata or {})
    except Exception as e:  # noqa: BLE001 - any failure to read is damage (or a step deleted meanwhile)
        raise _read_failure(checkpoint_dir(workdir) / str(step), "its metadata is unreadable", e) from e


def _restore(workdir, step, model, abstract_state, **targets) -> tuple[dict, dict]:
    """(restored items, custom metadata): identity checked first, every failure one line."""
    path = checkpoint_dir(workdir) / str(step)
    abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, t) for name, t in targets.items()}
    with _reader(workdir) as manager:
        saved = _metadata(manager, workdir, step)
        _check_identity(path, saved, model, targets["variables"], abstract_state)
        try:
            got = manager.restore(step, args=ocp.args.Composite(
                **{name: ocp.args.StandardRestore(t) for name, t in abstract.items()}))
        except Exception as e:  # noqa: BLE001
            problem = "it does not restore" + ("" if saved else " (it may also hold another model than the config's)")
            raise _read_failure(path, problem, e) from e
    return got, saved


def _read_failure(path: Path, problem: str, e: Exception) -> DamagedFile:
    if not path.exists():
        return DamagedFile(path, "it was removed while being read (a live trainer keeps only the latest "
                                 "ckpt_keep checkpoints)", "Rerun the command; it reads the checkpoints that remain.")
    return DamagedFile(path, f"{problem} ({type(e).__name__}: {one_line(e, 300)})", DAMAGED_WAY_OUT)


def _check_identity(path: Path, saved: dict, model: str | None, variables: Any, abstract_state: Any) -> None:
    """A checkpoint of another model (or another train state) is named, in one line."""
    if not saved.get("variables_fingerprint"):
        return  # written before identities were recorded: orbax's own checks remain
    way_out = "Use the config that made this run (only analysis.* may differ for analyze), or another --workdir."
    if model is not None and saved.get("model") != model:
        raise CheckpointMismatch(f"{path}: checkpoint of model {saved.get('model')}, config asks for {model}. "
                                 f"{way_out}")
    if saved["variables_fingerprint"] != fingerprint(variables):
        raise CheckpointMismatch(
            f"{path}: checkpoint of model {saved.get('model')} with {saved.get('num_params')} parameters, the config "
            f"builds {model or 'a model'} with {_num_params(variables)} (check wrn.*, use_batchnorm and the dataset's "
            f"image shape and classes). {way_out}")
    if abstract_state is not None and saved.get("state_fingerprint") not in (None, fingerprint(abstract_state)):
        raise CheckpointMismatch(f"{path}: the optimizer state saved with it has another structure than the config's "
                                 f"optimizer (momentum, grad_clip_norm, ...). {way_out}")


def _num_params(variables: Any) -> int:
    return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(variables["params"])))
