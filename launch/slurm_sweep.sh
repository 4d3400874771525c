#!/usr/bin/env bash
# An experiment's sweep on a SLURM cluster: one job-array task per run, one GPU each.
#
#   EXPERIMENT=e1_noise_fitting ROOT=/shared/runs/e1 VENV=/shared/venvs/spectral-jax PARTITION=gpu \
#     bash launch/slurm_sweep.sh            # add DRY_RUN=1 to print the sbatch script and submit nothing
#
# Run it from the repository on a login node, with ROOT on a filesystem every node sees. It returns once
# the job arrays are queued (at most ARRAY_PARALLELISM tasks run at once; no process of ours stays
# alive). Run the same command again at any time: it prints every run's state, skips finished runs
# and resubmits failed or interrupted ones. When all are done: spectral-jax report --root "$ROOT".
set -euo pipefail

EXPERIMENT=${EXPERIMENT:-e1_noise_fitting}
ROOT=${ROOT:?set ROOT to a folder on a shared filesystem}
VENV=${VENV:?set VENV to the virtualenv holding spectral-jax[launch] on every node}
PARTITION=${PARTITION:-gpu}
GPUS_PER_RUN=${GPUS_PER_RUN:-1}
TIME_MIN=${TIME_MIN:-1440}
ARRAY_PARALLELISM=${ARRAY_PARALLELISM:-32}

args=(
  --config="configs/experiments/${EXPERIMENT}.py"
  --root "$ROOT"
  --executor slurm
  --partition "$PARTITION"
  --gpus_per_node "$GPUS_PER_RUN"
  --cpus_per_task 8
  --time "$TIME_MIN"
  --array_parallelism "$ARRAY_PARALLELISM"
  --setup "source ${VENV}/bin/activate"
)
if [[ -n "${DRY_RUN:-}" ]]; then
  args+=(--dry_run)
fi
# shellcheck source=/dev/null
source "${VENV}/bin/activate"
spectral-jax sweep "${args[@]}"
