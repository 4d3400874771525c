"""launch/: the recipes parse as bash, pass shellcheck, and the SLURM sweep recipe's flags are
the sweep command's (its --dry_run prints the job array it would submit)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parent.parent / "launch"
SCRIPTS = sorted(p for p in LAUNCH.iterdir() if p.suffix in (".sh", ".sbatch"))


def test_there_is_a_recipe_for_each_place():
    assert {p.name for p in SCRIPTS} == {"gpu_node.sh", "slurm_sweep.sh", "slurm_multinode.sbatch", "tpu_pod.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_recipe_parses(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


# The [test] extra installs shellcheck beside this interpreter (found without activating the venv).
SHELLCHECK = shutil.which("shellcheck", path=os.pathsep.join([os.path.dirname(sys.executable),
                                                              os.environ.get("PATH", "")]))


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed (the [test] extra has it)")
def test_recipes_pass_shellcheck():
    result = subprocess.run([SHELLCHECK, "-s", "bash", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_slurm_sweep_recipe_dry_run_prints_the_job_array(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "EXPERIMENT": "e9_regularization", "ROOT": str(tmp_path / "e9"),
           "VENV": sys.prefix, "PARTITION": "a100"}
    out = subprocess.run(["bash", str(LAUNCH / "slurm_sweep.sh")], env=env, capture_output=True, text=True,
                         cwd=LAUNCH.parent, check=True).stdout
    assert "16 runs" in out and "#SBATCH --array=0-15%16" in out
    assert "#SBATCH --partition=a100" in out and "#SBATCH --gpus-per-node=1" in out
    assert f"source {sys.prefix}/bin/activate" in out
    assert not (tmp_path / "e9").exists()
