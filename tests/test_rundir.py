"""Run directories (docs/run_directory.md): one owner at a time, SIGKILL and a full disk at every
phase of a run survived, damaged files named with the way out, NaN losses.

Fault points are armed through SPECTRAL_JAX_FAULT (spectral_jax/io/faults.py). Commands that are
killed run as `spectral-jax ARGS` (cli.main) in child processes (tests/rundir_worker.py), so the
analysis kills hold whatever the analysis does inside. Every recovered run is compared with an
uninterrupted one: parameters of every checkpoint, metrics (except timings), summary.json,
config.json, the checkpoint steps, and no temporary file left anywhere.
"""

import contextlib
import itertools
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import cli, io, models
from spectral_jax import config as config_lib
from spectral_jax.errors import OutOfDisk, RunDirBusy
from spectral_jax.io import faults
from spectral_jax.spectral import series
from spectral_jax.train import checkpoints, loop
from spectral_jax.train import step as step_lib

import rundir_worker

ROOT = Path(__file__).resolve().parent.parent
# The smoke demo (digits, cnn, 2 epochs of 44 steps), keeping only the last checkpoint: step 44 is
# deleted by the trainer once 88 lands, so the tests also cover a deletion (and a reader beside it).
# A fixed forward batch: a fresh analysis otherwise picks the fastest one, and the last digits of
# its numbers with it, so only a resumed analysis would match the reference bit for bit.
RUN = (f"--config={ROOT / 'configs' / 'demo.py'}:smoke", "--config.ckpt_keep=1", "--config.ckpt_every_epochs=2",
       "--config.analysis.forward_batch=32")
TIMINGS = ("seconds", "time", "images_per_second", "train_seconds")
LEFTOVERS = (f".*{io.atomic.TEMP_MARK}*", f"*{checkpoints.TMP_SUFFIX}*", checkpoints.TRASH, "damaged_*")


# --------------------------------------------------------------------------------------
# Helpers: commands in child processes, and the comparison with an uninterrupted run.

FORK = multiprocessing.get_context("forkserver")
FORK.set_forkserver_preload(rundir_worker.PRELOAD)  # imported once by the fork server; a command is a fork


class Command:
    """`spectral-jax ARGS` in a child process (rundir_worker.cli_child), with a fault point armed."""

    def __init__(self, args, fault, cache, log, target=rundir_worker.cli_child):
        self.log = Path(log)
        self.proc = FORK.Process(target=target, args=([str(a) for a in args], fault, str(self.log), str(cache)))
        self.proc.start()
        self.pid = self.proc.pid

    def stopped(self, timeout=300) -> bool:
        """Waits until the child froze (a `stop` fault) or ended; True if it froze."""
        deadline = time.time() + timeout
        while self.proc.is_alive() and time.time() < deadline:
            with contextlib.suppress(OSError):  # it may end between the two calls
                if Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
                    return True
            time.sleep(0.02)
        return False

    def wait(self, want=0, timeout=300) -> str:
        """The child's output, once it ended with exit code `want` (-9: killed by its fault point)."""
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            pytest.fail(f"command timed out:\n{self.log.read_text()[-3000:]}")
        out = self.log.read_text() if self.log.exists() else ""
        assert self.proc.exitcode == want, f"exit {self.proc.exitcode}, wanted {want}:\n{out[-3000:]}"
        return out


@pytest.fixture(scope="module")
def spectral_jax(tmp_path_factory):
    """spectral_jax(*ARGS, fault=None) -> a started Command; compiled programs are cached for all."""
    cache, logs = tmp_path_factory.mktemp("jax_cache"), tmp_path_factory.mktemp("logs")
    count = itertools.count()
    return lambda *args, fault=None, **kw: Command(args, fault, cache, logs / f"{next(count)}.log", **kw)


def variables(workdir, step):
    config = config_lib.load_run_config(workdir)
    abstract = models.create_model(config, (8, 8, 1), 10)[1]
    return checkpoints.restore_variables(workdir, step, abstract, model=config.model)


def without(d, keys=TIMINGS):
    return {k: v for k, v in d.items() if k not in keys}


def leftovers(workdir):
    return [p for pattern in LEFTOVERS for p in Path(workdir).rglob(pattern)]


def trainer_layout(workdir):
    """The names of what the trainer owns: its top-level files and the checkpoint steps."""
    w = Path(workdir)
    names = {p.name for p in w.iterdir()
             if p.name not in ("analysis", "report", "tensorboard") and p.suffix != io.LOCK_SUFFIX}
    return names | {f"checkpoints/{p.name}" for p in checkpoints.checkpoint_dir(w).iterdir()}


def assert_same_run(workdir, reference):
    """Everything an uninterrupted run left, and nothing else."""
    w, ref = Path(workdir), Path(reference)
    assert not leftovers(w)
    assert trainer_layout(w) == trainer_layout(ref)
    assert (w / "config.json").read_text() == (ref / "config.json").read_text()
    got, want = io.read_jsonl(w / "metrics.jsonl"), io.read_jsonl(ref / "metrics.jsonl")
    assert [without(r) for r in got] == [without(r) for r in want]
    assert without(io.read_json(w / "summary.json")) == without(io.read_json(ref / "summary.json"))
    steps = checkpoints.valid_steps(w)
    assert steps == checkpoints.valid_steps(ref)
    for step in steps:
        jax.tree.map(np.testing.assert_array_equal, variables(w, step), variables(ref, step))


def copy_run(reference, dest):
    shutil.copytree(reference, dest, ignore=shutil.ignore_patterns("tensorboard"))
    return Path(dest)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spectral_jax):
    """An uninterrupted, analysed run of RUN. Tests copy it; nothing writes into it."""
    w = tmp_path_factory.mktemp("reference") / "run"
    spectral_jax("train", *RUN, "--workdir", w).wait()
    spectral_jax("analyze", "--workdir", w).wait()
    return w


# --------------------------------------------------------------------------------------
# The pieces: fault points, atomic writes, the lock.


def test_fault_point_fires_at_the_nth_matching_point_only(monkeypatch):
    assert faults.parse_fault("*/metrics.jsonl:2:enospc") == ("*/metrics.jsonl", 2, "enospc")
    assert faults.parse_fault("checkpoint.commit:1") == ("checkpoint.commit", 1, "kill")
    for bad in ("checkpoint.commit", "x:0", "x:2:explode"):
        with pytest.raises(ValueError, match="PATTERN:N"):
            faults.parse_fault(bad)
    monkeypatch.setenv(io.FAULT_ENV, "*/a.json:2:enospc")
    io.fault_point("/w/b.json")  # another file: not counted
    io.fault_point("/w/a.json")  # the first
    with pytest.raises(OSError, match="No space left on device"):
        io.fault_point("/w/a.json")
    io.fault_point("/w/a.json")  # only the N-th


def test_full_disk_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    io.write_json(path, {"v": 1})
    monkeypatch.setenv(io.FAULT_ENV, "*/summary.json:1:enospc")  # fsync reported ENOSPC
    with pytest.raises(OutOfDisk, match=r"No space left on device while writing .*summary.json.*left as it was"):
        io.write_json(path, {"v": 2})
    monkeypatch.delenv(io.FAULT_ENV)

    def full_disk(self, text):  # a write that fails half-way
        with open(self, "w") as f:
            f.write(text[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OutOfDisk):
        io.write_text(path, "x" * 100)
    assert io.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_one_owner_at_a_time_and_kill_9_frees_the_lock_at_once(tmp_path, spectral_jax):
    holder = spectral_jax(tmp_path, target=rundir_worker.hold_lock)  # takes the lock, then freezes
    try:
        assert holder.stopped(), holder.wait()
        with pytest.raises(RunDirBusy) as busy:
            io.RunLock(tmp_path, "train").acquire()
        message = str(busy.value)
        assert f"in use by another train (pid {holder.pid} on host " in message and "\n" not in message
        assert f"kill {holder.pid}" in message and "since " in message
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(-signal.SIGKILL)
    with io.RunLock(tmp_path, "train") as lock:  # no stale lock after kill -9
        assert io.read_owner(lock.path)["pid"] == os.getpid()
        with pytest.raises(RunDirBusy):  # a second owner in the same process is refused too
            io.RunLock(tmp_path, "train").acquire()
    assert io.read_owner(io.lock_path(tmp_path, "train")) == {}  # released: no owner note left


# --------------------------------------------------------------------------------------
# Crash-consistency: SIGKILL or a full disk at every phase, then the same command, equals an
# uninterrupted run.

# Each command resumes what the one before left, and is stopped again: killed at a fault point,
# or by a full disk there (exit 2, one line naming what failed; what was complete is kept).
TRAIN_FAULTS = (  # (fault, exit code, checkpoints kept after it, what a full disk's one line names)
    ("*/config.json:1", -9, [], ""),  # before the run's config is published
    ("checkpoint.begin:1", -9, [], ""),  # inside orbax's save of step 44: temporary folder made
    ("*/metrics.jsonl:1", -9, [], ""),  # the resume's rewrite of the log (epoch 1 had no checkpoint)
    ("checkpoint.commit:1", -9, [], ""),  # inside orbax's save of 44: all written and flushed, before the rename
    ("checkpoint.saved:1", -9, [44], ""),  # 44 published
    ("*/metrics.jsonl:1:enospc", 2, [44], "writing {w}/metrics.jsonl"),  # the record of epoch 2
    ("*/metrics.jsonl:1", -9, [44], ""),  # the record of epoch 2, before its rename
    ("checkpoint.commit:1:enospc", 2, [44], "saving checkpoint {w}/checkpoints/88: the partial save was removed "
                                            "and the last complete checkpoint is {w}/checkpoints/44."),
    ("checkpoint.saved:1", -9, [88], ""),  # 88 published and 44 moved to _deleted/, before it is deleted
    ("*/summary.json:1:enospc", 2, [88], "writing {w}/summary.json"),  # the finished run's summary
    ("*/summary.json:1", -9, [88], ""),  # the finished run's summary, before its rename
)


def test_training_stopped_at_every_phase_resumes_to_the_same_run(tmp_path, reference, spectral_jax):
    w = tmp_path / "run"
    for fault, code, kept, names in TRAIN_FAULTS:
        out = spectral_jax("train", *RUN, "--workdir", w, fault=fault).wait(code)  # never reached: exit 0, fails
        if code == 2:
            err = out.strip().splitlines()[-1]
            assert err.startswith("spectral-jax train: error: No space left on device while " + names.format(w=w)), err
            assert not leftovers(w)  # nothing half-written, anywhere
        assert checkpoints.valid_steps(w) == kept, fault
        assert not (w / "summary.json").exists()
    assert "already finished" in spectral_jax("train", *RUN, "--workdir", w).wait()  # only the summary was left
    assert_same_run(w, reference)


def test_analysis_killed_at_every_write_resumes_to_the_same_files(tmp_path, reference, spectral_jax, capsys):
    w = copy_run(reference, tmp_path / "run")
    shutil.rmtree(w / "analysis")
    live = spectral_jax("analyze", "--workdir", w, fault="*/step_*.npz:1:stop")  # frozen before step 88's file
    assert live.stopped(), live.wait()
    assert cli.main(["analyze", "--workdir", str(w)]) == 2  # one analyzer per run directory
    err = capsys.readouterr().err.strip()
    assert f"in use by another analyze (pid {live.pid} on host " in err and "\n" not in err, err
    os.kill(live.pid, signal.SIGKILL)
    live.wait(-signal.SIGKILL)
    assert series.analysed_steps(w) == []
    spectral_jax("analyze", "--workdir", w, fault="*/summary.csv:1").wait(-signal.SIGKILL)  # 88 done, not the table
    assert series.analysed_steps(w) == [88]
    spectral_jax("analyze", "--workdir", w).wait()
    want = series.analysis_dir(reference)
    assert sorted(os.listdir(series.analysis_dir(w))) == sorted(os.listdir(want))  # no temporary left
    assert (series.analysis_dir(w) / "summary.csv").read_text() == (want / "summary.csv").read_text()
    for step in (88,):
        got, ref = series.load_step(w, step), series.load_step(reference, step)
        assert got.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


# --------------------------------------------------------------------------------------
# One trainer per run directory; readers beside a live trainer.


def test_second_trainer_is_refused_and_readers_leave_a_live_run_alone(tmp_path, reference, spectral_jax, capsys):
    w = tmp_path / "run"
    args = ("train", *RUN, "--workdir", w)
    live = spectral_jax(*args, fault="checkpoint.saved:1:stop")  # freezes, holding the lock, once 44 is saved
    assert live.stopped(), live.wait()
    try:
        assert cli.main([str(a) for a in args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("spectral-jax train: error: ") and "\n" not in err, err
        assert f"in use by another train (pid {live.pid} on host " in err

        def trainer_files():
            return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in w.rglob("*")
                    if p.is_file() and p.relative_to(w).parts[0] not in ("analysis", "report", ".analyze.lock",
                                                                          ".report.lock")}

        before = trainer_files()
        spectral_jax("analyze", "--workdir", w).wait()  # the complete checkpoint, beside the live trainer
        assert cli.main(["report", "--workdir", str(w)]) == 0
        assert series.analysed_steps(w) == [44]
        assert trainer_files() == before  # nothing of the trainer's renamed, deleted or rewritten
    finally:  # let it go on (it deletes 44 once 88 lands), then kill it at a random moment
        os.kill(live.pid, signal.SIGCONT)
        time.sleep(random.uniform(0.0, 1.0))
        with contextlib.suppress(ProcessLookupError):  # it may have finished already
            os.kill(live.pid, signal.SIGKILL)
        live.proc.join()
    spectral_jax(*args).wait()
    assert_same_run(w, reference)


# --------------------------------------------------------------------------------------
# Damaged files: one line naming the file and the way out, or a logged recovery.


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_damaged_files_are_named_with_the_way_out(tmp_path, reference, spectral_jax, capsys):
    w = copy_run(reference, tmp_path / "run")
    ref = reference

    def error(cmd, *extra):
        code, _, err = run_cli(capsys, cmd, "--workdir", w, *extra)
        assert code == 2 and err.startswith(f"spectral-jax {cmd}: error: ") and "\n" not in err, err
        return err

    # metrics.jsonl with a torn last line: analyze names it; train rebuilds it from checkpoint 88.
    with open(w / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "st')
    assert "metrics.jsonl is damaged: line 3 is not valid JSON" in error("analyze")
    code, out, _ = run_cli(capsys, "train", "--workdir", w)
    assert code == 0 and "damaged line(s)" in out and "rebuilt from the records saved with checkpoint 88" in out
    assert (w / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()

    # summary.json: report names it; train rebuilds it from the records (the same figures).
    (w / "summary.json").write_text('{"final_test_acc": 0.9')
    assert "summary.json is damaged: not valid JSON" in error("report")
    assert run_cli(capsys, "train", "--workdir", w)[0] == 0
    assert io.read_json(w / "summary.json") == io.read_json(ref / "summary.json")

    # config.json: every command names it.
    good = (w / "config.json").read_text()
    (w / "config.json").write_text(good[:50])
    for cmd in ("analyze", "train"):
        assert "config.json is damaged: not valid JSON" in error(cmd)
    (w / "config.json").write_text(good.replace('"epochs": 2', '"epochs": "two"'))
    assert "config.json is damaged: Config key 'epochs' expects int" in error("analyze")
    (w / "config.json").write_text(good)

    # Analysis files: report names them; analyze recomputes or rewrites them.
    step_88 = series.analysis_dir(w) / "step_88.npz"
    step_88.write_bytes(step_88.read_bytes()[:1000])
    assert "step_88.npz is damaged: not a readable .npz" in error("report")
    spectral_jax("analyze", "--workdir", w).wait()  # computes it again
    np.testing.assert_array_equal(series.load_step(w, 88)["max_grad"], series.load_step(ref, 88)["max_grad"])
    table = series.analysis_dir(w) / "summary.csv"
    table.write_text(table.read_text().rsplit(",", 3)[0] + "\n")
    fields = len(table.read_text().splitlines()[0].split(","))
    assert f"summary.csv is damaged: line 3 does not have the header's {fields} fields" in error("report")

    # A checkpoint of another model: one line, from the config (an override) or from the checkpoint
    # itself (a config.json replaced by another run's).
    assert "are of model cnn (model='cnn', from its config.json); the config asks for mlp" in error(
        "analyze", "--config.model=mlp")
    (w / "config.json").write_text(good.replace('"model": "cnn"', '"model": "mlp"'))
    shutil.rmtree(w / "analysis")  # so that analyze reads the checkpoint
    for cmd in ("analyze", "train"):
        assert "checkpoints/88: checkpoint of model cnn, config asks for mlp." in error(cmd)


def test_damaged_checkpoint_is_named_by_analyze_and_set_aside_by_train(tmp_path, reference, spectral_jax, capsys):
    w = copy_run(reference, tmp_path / "run")
    shutil.rmtree(w / "analysis")
    # Its metadata says "finished", its arrays are gone.
    for p in (checkpoints.checkpoint_dir(w) / "88" / "variables").iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    code, _, err = run_cli(capsys, "analyze", "--workdir", w)
    assert code == 2 and err.startswith("spectral-jax analyze: error: ") and "\n" not in err, err
    assert "checkpoints/88 is damaged: it does not restore" in err and "Training skips it" in err
    out = spectral_jax("train", "--workdir", w).wait()  # no earlier checkpoint: it trains again from step 0
    assert "Skipping damaged checkpoint" in out and "set aside the checkpoint past the step the run resumes from as" in out
    assert (checkpoints.checkpoint_dir(w) / "damaged_88_0").is_dir()  # set aside by the trainer, not deleted
    shutil.rmtree(checkpoints.checkpoint_dir(w) / "damaged_88_0")
    assert_same_run(w, reference)


# --------------------------------------------------------------------------------------
# A NaN loss stops the run; what was complete is kept.


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, smoke_config, monkeypatch):
    make = step_lib.make_train_step

    def poisoned(*args, **kwargs):
        real = make(*args, **kwargs)
        calls = []

        def train_step(state, metrics, *rest):
            calls.append(1)
            if len(calls) == 50:  # step 50, in epoch 2 (44 steps per epoch)
                with jax.transfer_guard("allow"):
                    state = {**state, "params": jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state["params"])}
            return real(state, metrics, *rest)

        return train_step

    monkeypatch.setattr(step_lib, "make_train_step", poisoned)
    w = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"NaN/Inf at step 50 \(epoch 2\).*checkpoints/44"):
        loop.train_and_evaluate(smoke_config, w, quiet=True)
    assert checkpoints.valid_steps(w) == [44]
    assert [r["epoch"] for r in io.read_jsonl(w / "metrics.jsonl")] == [1]
    assert not (w / "summary.json").exists()


def test_results_get_the_permissions_the_umask_gives(tmp_path):
    """Not mkstemp's 0600: on a shared cluster the rest of a group reads the results."""
    io.write_json(tmp_path / "a.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask == 0o644
