"""Run directories (docs/run_directory.md): one owner at a time, SIGKILL at every phase of a run
survived, damaged files named with the way out, a full disk stopped cleanly, NaN losses.

Fault points are armed through SPECTRAL_JAX_FAULT (spectral_jax/io/faults.py); killed commands
run as `python -m spectral_jax.cli` subprocesses, so the analysis kills hold whatever the
analysis does inside. Every recovered run is compared with an uninterrupted one: parameters
of every checkpoint, metrics (except timings), summary.json, config.json, the folder layout,
and no temporary file left anywhere.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
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

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "demo.py") + ":smoke"  # digits, cnn, 2 epochs of 44 steps: checkpoints 44, 88
KEEP_LAST = ["--config.ckpt_keep=1", "--config.ckpt_every_epochs=2"]  # step 44 is deleted when 88 lands
TIMINGS = ("seconds", "time", "images_per_second", "train_seconds")
LEFTOVERS = (f".*{io.atomic.TEMP_MARK}*", f"*{checkpoints.TMP_SUFFIX}*", checkpoints.TRASH, "damaged_*")


# --------------------------------------------------------------------------------------
# Helpers: commands in subprocesses, and the comparison with an uninterrupted run.


def command(args, fault=None, cache=None, **popen):
    """`spectral-jax ARGS` in a subprocess, with a fault point armed."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop(io.FAULT_ENV, None)
    if fault:
        env[io.FAULT_ENV] = fault
    if cache:  # compiled programs shared by the subprocesses of a test (the same executables)
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return subprocess.Popen([sys.executable, "-m", "spectral_jax.cli", *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc, want=0, timeout=300):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("command timed out")
    assert proc.returncode == want, f"exit {proc.returncode}, wanted {want}:\n{out[-3000:]}"
    return out


def killed_at(args, fault, cache):
    """Runs until the armed fault point kills it (a point never reached is a failure)."""
    return finish(command(args, fault, cache), want=-signal.SIGKILL)


def variables(workdir, step, model="cnn"):
    config = config_lib.load_run_config(workdir)
    abstract = models.create_model(config, (8, 8, 1), 10)[1]
    return checkpoints.restore_variables(workdir, step, abstract, model=model)


def without(d, keys=TIMINGS):
    return {k: v for k, v in d.items() if k not in keys}


def trainer_layout(workdir):
    """The names of what the trainer owns: its top-level files and the checkpoint steps."""
    w = Path(workdir)
    names = {p.name for p in w.iterdir() if p.name not in ("analysis", "report", "tensorboard", io.LOCK_NAME)}
    return names | {f"checkpoints/{p.name}" for p in checkpoints.checkpoint_dir(w).iterdir()}


def assert_same_run(workdir, reference):
    """Everything an uninterrupted run left, and nothing else."""
    w, ref = Path(workdir), Path(reference)
    leftovers = [p for pattern in LEFTOVERS for p in w.rglob(pattern)]
    assert not leftovers, leftovers
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
def reference(tmp_path_factory):
    """Uninterrupted smoke runs, trained in this process: `plain` (checkpoints 44 and 88, analysed)
    and `keep_last` (only 88 kept). Tests copy them; nothing writes into them."""
    root = tmp_path_factory.mktemp("reference")
    runs = {}
    for name, overrides in (("plain", []), ("keep_last", KEEP_LAST)):
        config = config_lib.load_config_file(SMOKE)
        config_lib.apply_overrides(config, config_lib.parse_overrides(overrides))
        t0 = time.perf_counter()
        loop.train_and_evaluate(config, root / name, quiet=True)
        runs[name + "_seconds"] = time.perf_counter() - t0
        runs[name] = root / name
    series.analyze_run(runs["plain"], quiet=True)
    return runs


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


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


def test_one_owner_at_a_time_and_kill_9_frees_the_lock_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spectral_jax import io; "
         "io.RunLock(sys.argv[1], 'train').acquire(); print('held', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy) as busy:
            io.RunLock(tmp_path, "train").acquire()
        message = str(busy.value)
        assert f"pid {holder.pid} on host " in message and "since " in message and "\n" not in message
        assert f"kill {holder.pid}" in message
    finally:
        holder.kill()
        holder.wait()
    with io.RunLock(tmp_path, "train") as lock:  # no stale lock after kill -9
        assert io.read_owner(lock.path)["pid"] == os.getpid()
        with pytest.raises(RunDirBusy):  # a second owner in the same process is refused too
            io.RunLock(tmp_path, "train").acquire()
    assert io.read_owner(tmp_path / io.LOCK_NAME) == {}  # released: no owner note left


# --------------------------------------------------------------------------------------
# Crash-consistency: SIGKILL at every phase, then the same command, equals an uninterrupted run.

TRAIN_FAULTS = (
    "*/config.json:1",  # before the run's config is published
    "checkpoint.begin:1",  # inside orbax's save of step 44: temporary folder made, nothing written
    "*/metrics.jsonl:1",  # rewriting metrics.jsonl on resume (the record of an unsaved epoch dropped)
    "checkpoint.commit:1",  # inside orbax's save of 44: all written and flushed, before the rename
    "checkpoint.saved:1",  # 44 published, before the process goes on
    "*/metrics.jsonl:1",  # the record of epoch 2, before its rename
    "checkpoint.saved:1",  # 88 published and 44 moved to _deleted/, before it is deleted
    "*/summary.json:1",  # the summary of the finished run, before its rename
)


def test_training_killed_at_every_phase_resumes_to_the_same_run(tmp_path, reference, jax_cache):
    w = tmp_path / "run"
    args = ["train", f"--config={SMOKE}", "--workdir", w, *KEEP_LAST]
    for fault in TRAIN_FAULTS:
        killed_at(args, fault, jax_cache)
    out = finish(command(args, cache=jax_cache))
    assert "already finished" in out  # the last kill left only the summary to write
    assert_same_run(w, reference["keep_last"])


def test_analysis_killed_at_every_write_resumes_to_the_same_files(tmp_path, reference, jax_cache):
    w = copy_run(reference["plain"], tmp_path / "run")
    shutil.rmtree(w / "analysis")
    args = ["analyze", "--workdir", w]
    for fault in ("*/step_*.npz:1", "*/step_*.npz:2", "*/summary.csv:1"):  # before 44, before 88, the table
        killed_at(args, fault, jax_cache)
    assert sorted(p.name for p in series.analysis_dir(w).glob("step_*.npz")) == ["step_44.npz", "step_88.npz"]
    finish(command(args, cache=jax_cache))
    want = series.analysis_dir(reference["plain"])
    assert sorted(os.listdir(series.analysis_dir(w))) == sorted(os.listdir(want))  # no temporary left
    assert (series.analysis_dir(w) / "summary.csv").read_text() == (want / "summary.csv").read_text()
    for step in (44, 88):
        got, ref = series.load_step(w, step), series.load_step(reference["plain"], step)
        assert got.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


# --------------------------------------------------------------------------------------
# One trainer per run directory; readers beside a live trainer.


def test_second_trainer_is_refused_and_readers_leave_a_live_run_alone(tmp_path, reference, jax_cache, capsys):
    w = tmp_path / "run"
    args = ["train", f"--config={SMOKE}", "--workdir", w]
    live = command(args, "checkpoint.saved:1:stop", jax_cache)  # freezes, holding the lock, once 44 is saved
    _, status = os.waitpid(live.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), finish(live)
    try:
        assert cli.main([str(a) for a in args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("spectral-jax train: error: ") and "\n" not in err
        assert f"in use by another train (pid {live.pid} on host " in err

        def trainer_files():
            return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in w.rglob("*")
                    if p.is_file() and p.relative_to(w).parts[0] not in ("analysis", "report")}

        before = trainer_files()
        assert cli.main(["analyze", "--workdir", str(w)]) == 0  # the complete checkpoint, beside the trainer
        assert cli.main(["report", "--workdir", str(w)]) == 0
        assert series.analysed_steps(w) == [44]
        assert trainer_files() == before  # nothing of the trainer's renamed, deleted or rewritten
    finally:  # let it go on, then kill it at a random moment of epoch 2 or its checkpoint
        live.send_signal(signal.SIGCONT)
        time.sleep(random.uniform(0.0, 1.0))
        live.kill()
        live.communicate()
    finish(command(args, cache=jax_cache))
    assert_same_run(w, reference["plain"])


# --------------------------------------------------------------------------------------
# Damaged files: one line naming the file and the way out, or a logged recovery.


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_damaged_files_are_named_with_the_way_out(tmp_path, reference, capsys):
    w = copy_run(reference["plain"], tmp_path / "run")
    ref = reference["plain"]

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
    code, out, _ = run_cli(capsys, "analyze", "--workdir", w)
    assert code == 0 and "step_88.npz is damaged" in out and "recomputing it" in out
    np.testing.assert_array_equal(series.load_step(w, 88)["max_grad"], series.load_step(ref, 88)["max_grad"])
    table = series.analysis_dir(w) / "summary.csv"
    table.write_text(table.read_text().rsplit(",", 3)[0] + "\n")
    assert "summary.csv is damaged: line 5 does not have the header's 12 fields" in error("report")

    # A checkpoint of another model: one line.
    err = error("analyze", "--config.model=mlp")
    assert "checkpoints/44: checkpoint of model cnn, config asks for mlp." in err


def test_damaged_newest_checkpoint_is_skipped_by_train_and_named_by_analyze(tmp_path, reference, capsys):
    w = copy_run(reference["plain"], tmp_path / "run")
    shutil.rmtree(w / "analysis")
    # Its metadata says "finished", its arrays are gone.
    for p in (checkpoints.checkpoint_dir(w) / "88" / "variables").iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    code, _, err = run_cli(capsys, "analyze", "--workdir", w)
    assert code == 2 and "checkpoints/88 is damaged: it does not restore" in err and "\n" not in err
    assert "Training skips it" in err
    (w / "summary.json").unlink()
    with pytest.warns(UserWarning, match=r"Skipping damaged checkpoint .*checkpoints/88"):
        assert run_cli(capsys, "train", "--workdir", w)[0] == 0
    assert (checkpoints.checkpoint_dir(w) / "damaged_88_0").is_dir()  # set aside by the trainer, not deleted
    shutil.rmtree(checkpoints.checkpoint_dir(w) / "damaged_88_0")
    assert_same_run(w, reference["plain"])


# --------------------------------------------------------------------------------------
# A full disk and a NaN loss stop the run; what was complete is kept.


def test_full_disk_stops_the_run_keeping_the_last_complete_checkpoint(tmp_path, reference, capsys, monkeypatch):
    w = tmp_path / "run"
    args = ["train", f"--config={SMOKE}", "--workdir", w]
    for fault, kept, last_words in (("*/metrics.jsonl:2:enospc", [44], "metrics.jsonl"),
                                    ("checkpoint.commit:1:enospc", [44], "checkpoints/44"),
                                    ("*/summary.json:1:enospc", [44, 88], "summary.json")):
        monkeypatch.setenv(io.FAULT_ENV, fault)
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("spectral-jax train: error: No space left on device") and "\n" not in err
        assert last_words in err, err
        assert checkpoints.valid_steps(w) == kept
        assert not [p for pattern in LEFTOVERS for p in w.rglob(pattern)]  # nothing half-written
        assert not (w / "summary.json").exists()
    monkeypatch.delenv(io.FAULT_ENV)
    assert run_cli(capsys, *args)[0] == 0  # space freed: the same command finishes the run
    assert_same_run(w, reference["plain"])


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
