#!/usr/bin/env bash
# An experiment's sweep on one machine with GPUs: one run per GPU at a time, every run seeing only its GPU.
#
#   EXPERIMENT=e3_architecture ROOT=runs/e3 bash launch/gpu_node.sh      # DRY_RUN=1: show the plan only
#
# Interrupt it at any time (Ctrl-C, or the machine goes away) and run it again: finished runs are skipped,
# interrupted ones resume from their newest checkpoint, failed ones are retried. It ends with a table of
# run states and the aggregated report (ROOT/results.csv, ROOT/report/*.png).
# For one large run over all GPUs of the node instead, use:
#   spectral-jax train --config=configs/experiments/e3_architecture.py --workdir runs/wrn160 --config.model=wrn_160
set -euo pipefail

EXPERIMENT=${EXPERIMENT:-e1_noise_fitting}
ROOT=${ROOT:-runs/${EXPERIMENT}}
args=(--config="configs/experiments/${EXPERIMENT}.py" --root "$ROOT" --executor local)
if [[ -n "${MAX_PARALLEL:-}" ]]; then
  args+=(--max_parallel "$MAX_PARALLEL")
fi
if [[ -n "${DRY_RUN:-}" ]]; then
  spectral-jax sweep "${args[@]}" --dry_run
  exit 0
fi
status=0
spectral-jax sweep "${args[@]}" || status=$?
spectral-jax report --root "$ROOT"
exit "$status"
