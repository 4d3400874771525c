"""Sweeps: building run lists, expanding experiment configs into named runs, and running them
through submitit (local processes, the debug executor, a fake SLURM) with skip / resume / retry."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spectral_jax import cli, io
from spectral_jax.errors import ConfigError
from spectral_jax.sweep import Options, expand, hyper, run_sweep
from spectral_jax.sweep import executors
from spectral_jax.sweep.driver import same_spec
from spectral_jax.sweep import state as state_lib
from spectral_jax.sweep.groups import group_runs
from spectral_jax.sweep.runs import Run

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "configs" / "experiments"
# (full scale, :cpu, :smoke) runs of every experiment, as their docstrings state them.
RUN_COUNTS = {"e1_noise_fitting": (60, 22, 2), "e2_training_time": (6, 4, 2), "e3_architecture": (12, 8, 2),
              "e4_train_size": (8, 8, 2), "e5_augmentation": (12, 12, 2), "e6_distillation": (4, 4, 2),
              "e7_image_frequency": (26, 22, 2), "e8_class_diversity": (2, 4, 2), "e9_regularization": (16, 14, 2)}


def test_importing_the_cli_leaves_logging_alone():
    """submitit reconfigures logging when imported (closing the handlers in place, which broke
    captured output in notebooks and tests): it is imported only when a sweep submits."""
    code = ("import logging, sys; handler = logging.StreamHandler(sys.stderr); "
            "logging.getLogger().addHandler(handler); import spectral_jax.cli; "
            "assert 'submitit' not in sys.modules, 'submitit imported'; "
            "assert handler in logging.getLogger().handlers, 'handler removed'; "
            "from spectral_jax.sweep import executors; assert executors.require_submitit().__name__ == 'submitit'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def write_sweep_config(path: Path, sweep_body: str, epochs: int = 2) -> str:
    """A sweep config file around the demo's smoke config; returns its path."""
    path.write_text(textwrap.dedent(f'''\
        """A test sweep.

        Command: spectral-jax sweep --config=THIS --root R
        Hardware: a CPU. Time: seconds. Result: none.
        """
        from spectral_jax import config as config_lib
        from spectral_jax.sweep import hyper

        FIGURE = "intervention"


        def get_config(arg=""):
            c = config_lib.load_config_file({str(REPO / "configs" / "demo.py")!r} + ":smoke")
            c.epochs = c.ckpt_every_epochs = {epochs}
            c.ckpt_keep = 1  # the analysis then evaluates the last checkpoint only
            return c


        def get_sweep(arg=""):
            return {sweep_body}
        '''))
    return str(path)


def test_hyper_builds_products_zips_and_chains():
    assert hyper.product(hyper.sweep("a", [1, 2]), hyper.sweep("b", ["x", "y"])) == \
        [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert hyper.zipit(hyper.sweep("a", [1, 2]), hyper.sweep("b", [3, 4])) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    assert hyper.chainit(hyper.fixed("a", 0), hyper.sweep("b", [1])) == [{"a": 0}, {"b": 1}]
    with pytest.raises(ConfigError, match="one length"):
        hyper.zipit(hyper.sweep("a", [1, 2]), hyper.sweep("b", [3]))
    with pytest.raises(ConfigError, match="both set a"):
        hyper.product(hyper.sweep("a", [1]), hyper.sweep("a", [2]))


@pytest.mark.parametrize("name", sorted(RUN_COUNTS))
def test_experiment_sweeps_expand_to_their_documented_runs(name, tmp_path):
    path = EXPERIMENTS / f"{name}.py"
    doc = path.read_text().split('"""')[1]
    for arg, count in zip(("", ":cpu", ":smoke"), RUN_COUNTS[name]):
        plan = expand(f"{path}{arg}", tmp_path)
        names = [r.name for r in plan.runs]
        assert len(names) == count, (arg, names)
        assert len(set(names)) == count
        assert all(re.fullmatch(r"[A-Za-z0-9._=-]+-[0-9a-f]{8}", n) for n in names)
        assert f"{count} runs" in doc or count == 2, f"{name}{arg}: the docstring does not state {count} runs"
    assert not tmp_path.exists() or not any(tmp_path.iterdir()), "expanding a sweep writes nothing"


def test_run_names_hash_only_what_changes_the_config(tmp_path):
    """Two spellings of one config are one run (the baseline of a one-at-a-time sweep appears
    once); names do not depend on the root; a RunRef becomes a dependency on a stage-0 run."""
    spec = write_sweep_config(tmp_path / "s.py", textwrap.dedent('''\
        hyper.chainit(hyper.sweep("weight_decay", [5e-4, 0.0]), hyper.sweep("lr", [0.05, 0.1]),
                      [{"seed": 1, "teacher_workdir": hyper.RunRef({"weight_decay": 0.0})}])'''))
    plan = expand(spec, tmp_path / "a")
    names = [r.name for r in plan.runs]
    # weight_decay 5e-4 and lr 0.05 are the demo's own values: one run, named by its first spelling.
    assert len(names) == 4 and names[0].startswith("weight_decay-0.0005-") and not any("lr-0.05" in n for n in names)
    assert [r.name for r in expand(spec, tmp_path / "elsewhere").runs] == names
    student = plan.runs[-1]
    assert student.stage == 1 and student.depends_on == (names[1],)
    assert student.config.teacher_workdir == str((tmp_path / "a" / names[1]).absolute())
    assert student.label == "teacher_workdir=@run" and plan.runs[0].label == "weight_decay=0.0005"


def test_a_bad_sweep_is_an_error_before_anything_is_written(tmp_path):
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("wieght_decay", [0.0])')
    assert cli.main(["sweep", f"--config={spec}", "--root", str(tmp_path / "r")]) == 2
    spec = write_sweep_config(tmp_path / "t.py", 'hyper.sweep("noise.type", ["radial"])')  # no amplitude
    with pytest.raises(ConfigError, match="noise.amplitude"):
        run_sweep(spec, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_group_size_gathers_runs_that_differ_only_in_vmappable_keys(tmp_path):
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.product(hyper.sweep("augment.mixup_alpha", [0.0, 0.1]), '
                                                 'hyper.sweep("seed", [0, 1, 2]))')
    runs = expand(spec, tmp_path).runs
    groups = group_runs(runs, group_size=2)
    assert [[r.config.seed for r in g] for g in groups] == [[0, 1], [2], [0, 1], [2]]
    assert all(len({r.config.augment.mixup_alpha for r in g}) == 1 for g in groups)
    assert group_runs(runs) == [[r] for r in runs]


def test_a_group_trains_as_one_ensemble(tmp_path, monkeypatch, capsys):
    """--group_size 2: two seeds train in one program (train_runs with both), then each run is
    analysed and reported like a run of its own."""
    from spectral_jax.sweep import job as job_lib

    calls = []
    real = job_lib.train_runs
    monkeypatch.setattr(job_lib, "train_runs", lambda configs, workdirs, **kw: calls.append(
        [c.seed for c in configs]) or real(configs, workdirs, **kw))
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("seed", [0, 1])', epochs=1)
    root = tmp_path / "r"
    assert cli.main(["sweep", f"--config={spec}", "--root", str(root), "--executor", "debug",
                     "--group_size", "2"]) == 0
    assert calls == [[0, 1]]
    for run in expand(spec, root).runs:
        assert io.read_json(root / run.name / "summary.json")["last_step"] == 44
        assert (root / run.name / "report" / "summary.json").exists()
        assert state_lib.read_state(root, run.name)["state"] == "done"


@pytest.mark.parametrize("gpus", [[], [0, 1], [0, 1, 2]])
def test_local_pool_keeps_at_most_max_parallel_jobs_alive(tmp_path, monkeypatch, gpus):
    """300 runs through the local pool with max_parallel 3 (submitit's LocalExecutor replaced by
    a stand-in whose jobs finish after a few polls): never more than 3 jobs alive, all done; on a
    machine with GPUs every job is pinned to one, the least busy."""
    alive, peak, per_gpu = set(), [], []

    class Job:
        def __init__(self, runs, gpu):
            self.runs, self.gpu, self.polls, self.job_id = runs, gpu, 0, f"job{len(peak)}"
            self.paths = type("Paths", (), {"stdout": tmp_path / "log"})

        def done(self):
            self.polls += 1
            if self.polls < 3:
                return False
            for name, _ in self.runs:
                state_lib.write_state(tmp_path, name, state="done")
            alive.discard(self)
            return True

    class Executor:
        def __init__(self, folder):
            self.params = {}

        def update_parameters(self, **kwargs):
            self.params.update(kwargs)

        def submit(self, fn, root, runs, quiet):
            job = Job(runs, self.params.get("visible_gpus"))
            alive.add(job)
            peak.append(len(alive))
            per_gpu.append(max([sum(j.gpu == [g] for j in alive) for g in gpus], default=0))
            assert job.gpu is None if not gpus else len(job.gpu) == 1
            assert fn.shares_gpu == (0 < len(gpus) < 3)  # JAX must not preallocate a shared GPU
            return job

    monkeypatch.setattr(executors.require_submitit(), "LocalExecutor", Executor)
    monkeypatch.setattr(executors, "local_gpus", lambda: gpus)
    groups = [[Run(name=f"run{i}", overrides={}, effective={}, label="baseline", config=None)] for i in range(300)]
    outcome = executors.run_pool(tmp_path, groups, Options(max_parallel=3, poll_s=0), {}, log=lambda *_: None)
    assert len(peak) == 300 and max(peak) == 3
    assert max(per_gpu) == (-(-3 // len(gpus)) if gpus else 0)  # 3 jobs on 2 GPUs: 2 share one
    assert {state for state, _ in outcome.values()} == {"done"} and len(outcome) == 300


def test_failed_run_is_reported_and_retried_while_the_other_finishes(tmp_path, capsys):
    """batch 4096 passes validation but not the 1,437 training images: it fails at run time."""
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("batch_size", [32, 4096])')
    root = tmp_path / "r"
    assert cli.main(["sweep", f"--config={spec}", "--root", str(root), "--executor", "debug"]) == 1
    table = capsys.readouterr().out
    ok, bad = expand(spec, root).runs
    assert re.search(rf"{ok.name}\s+done", table)
    assert re.search(rf"{bad.name}\s+failed .*ConfigError: batch_size 4096 is larger than the training split", table)
    assert io.read_json(root / ok.name / "summary.json")["last_step"] == 88
    # Again: the finished run is skipped, the failed one retried (and fails again).
    assert cli.main(["sweep", f"--config={spec}", "--root", str(root), "--executor", "debug"]) == 1
    table = capsys.readouterr().out
    assert re.search(rf"{ok.name}\s+done .*skipped \(done\)", table)
    assert state_lib.read_state(root, bad.name)["attempt"] == 2


def test_local_sweep_interrupted_resumes_then_skips(tmp_path, capsys):
    """A 2-run sweep through submitit's local executor, killed (with its jobs) after a first
    checkpoint; the same command resumes the interrupted runs from their checkpoints, and a third
    time skips both without starting a job."""
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("seed", [0, 1])', epochs=3)
    root = tmp_path / "r"
    command = ["sweep", f"--config={spec}", "--root", str(root), "--max_parallel", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "spectral_jax.cli", *command], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not any(
                p.parent.name.isdigit() for p in root.glob("*/checkpoints/*/_CHECKPOINT_METADATA")):
            time.sleep(0.05)  # until a finalized checkpoint (not orbax's temporary folder) exists
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the job processes it started
        proc.wait()
    runs = expand(spec, root).runs
    records = [json.loads(state_lib.state_path(root, r.name).read_text()) for r in runs
               if state_lib.state_path(root, r.name).exists()]
    assert any(r["state"] == "running" for r in records)
    for r in records:  # a job that was just starting can miss its parent's death: kill it as well
        if r["state"] == "running":
            try:
                os.kill(r["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    # A killed job inside an fsync exits only when the disk answers (slow on a loaded machine);
    # until then the sweep rightly sees it running elsewhere and leaves it alone.
    deadline = time.time() + 120
    while time.time() < deadline and any(state_lib.process_alive(r) for r in records):
        time.sleep(0.1)

    assert cli.main(command) == 0
    out = capsys.readouterr().out
    for run in runs:
        epochs = [r["epoch"] for r in io.read_jsonl(root / run.name / "metrics.jsonl")]
        assert epochs == [1, 2, 3], epochs  # each epoch once: resumed, not restarted
        assert state_lib.read_state(root, run.name)["state"] == "done"
    logs = "".join(p.read_text() for p in root.glob("jobs/logs/*/*_log.out"))
    assert "resuming from step" in logs
    assert "2 runs: 2 done" in out

    jobs_before = sorted(p.name for p in (root / "jobs" / "logs").iterdir())
    assert cli.main(command) == 0
    assert "skipped (done)" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "jobs" / "logs").iterdir()) == jobs_before


def test_slurm_submits_job_arrays_per_stage_and_resubmits_dead_jobs(tmp_path, monkeypatch, capsys):
    """With a fake sbatch/srun/sacct on PATH: E6's teacher and student go out as two submissions,
    the student's after the teacher's; --dry_run prints an array script; a rerun resubmits only
    the run whose job SLURM reports dead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        n=$(ls {tmp_path}/submitted_* 2>/dev/null | wc -l)
        cp "$1" {tmp_path}/submitted_$n.sh
        echo "Submitted batch job $((4242 + n))"
        """))
    (bin_dir / "sacct").write_text("#!/bin/sh\nprintf 'JobID|State|NodeList\\n4242|FAILED|n1\\n4243|PENDING|\\n'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    spec = f"{EXPERIMENTS / 'e6_distillation.py'}:smoke"
    root = tmp_path / "r"
    flags = ["--executor", "slurm", "--partition", "gpu", "--gpus_per_node", "1", "--time", "30"]
    assert cli.main(["sweep", f"--config={spec}", "--root", str(root), *flags]) == 0
    scripts = sorted(tmp_path.glob("submitted_*.sh"))
    assert len(scripts) == 2
    first, second = (p.read_text() for p in scripts)
    assert "#SBATCH --partition=gpu" in first and "#SBATCH --gpus-per-node=1" in first and "--time=30" in first
    assert "dependency" not in first and "#SBATCH --dependency=afterany:4242" in second
    assert "2 runs: 2 pending" in capsys.readouterr().out

    assert cli.main(["sweep", f"--config={spec}", "--root", str(root), *flags]) == 0
    assert len(list(tmp_path.glob("submitted_*.sh"))) == 3  # the teacher again; the student still queued
    out = capsys.readouterr().out
    assert "2 runs: 2 pending" in out

    e1 = f"{EXPERIMENTS / 'e1_noise_fitting.py'}:smoke"
    assert cli.main(["sweep", f"--config={e1}", "--root", str(tmp_path / "dry"), *flags, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-1%2" in out and "submitit.core._submit" in out
    assert not (tmp_path / "dry").exists()


def test_a_root_holds_one_experiment(finished_sweep_root, tmp_path):
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("seed", [0])')
    with pytest.raises(ConfigError, match="holds the sweep of"):
        run_sweep(spec, finished_sweep_root)
    e1 = str(EXPERIMENTS / "e1_noise_fitting.py")
    assert same_spec(e1 + ":smoke", "configs/experiments/../experiments/e1_noise_fitting.py:smoke")
    assert same_spec("/gone/e1_noise_fitting.py:cpu", e1 + ":cpu")  # written on another machine
    assert not same_spec(e1 + ":smoke", e1 + ":cpu") and not same_spec(e1, spec)


def test_without_submitit_a_sweep_stops_before_writing(tmp_path, monkeypatch, capsys):
    def missing(name, *args):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(executors.importlib, "import_module", missing)
    spec = write_sweep_config(tmp_path / "s.py", 'hyper.sweep("seed", [0])')
    assert cli.main(["sweep", f"--config={spec}", "--root", str(tmp_path / "r"), "--executor", "debug"]) == 2
    assert "pip install 'spectral-jax[launch]'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "sweep.json").exists()


def test_one_sweep_driver_per_root(finished_sweep_root, capsys):
    """A second `sweep` on a root whose driver still runs is refused in one line, before it
    submits anything; the finished sweep then reruns (all skipped) once the first is gone."""
    spec = str(EXPERIMENTS / "e1_noise_fitting.py") + ":smoke"
    args = ["sweep", f"--config={spec}", "--root", str(finished_sweep_root), "--executor", "debug"]
    with io.RunLock(finished_sweep_root, "sweep"):  # the first driver, still running
        assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "in use by another sweep" in err and "Traceback" not in err
    assert cli.main(args) == 0
    assert "0 to run" in capsys.readouterr().out
