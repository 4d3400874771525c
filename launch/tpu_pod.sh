#!/usr/bin/env bash
# One large run on a Cloud TPU VM pod slice (e.g. v4-32: 4 hosts), every host running the same command.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b REPO_URL=https://github.com/OWNER/spectral-jax \
#     WORKDIR=/mnt/shared/runs/wrn160 bash launch/tpu_pod.sh
#
# `--worker=all` runs a command on every host of the slice at once. JAX finds the other hosts of the
# slice by itself; the global batch is split over every chip. WORKDIR must be a filesystem all hosts
# mount (e.g. a Filestore NFS share): every host writes its shards of the checkpoints there.
# Running the script again resumes the run from its newest checkpoint.
set -euo pipefail

TPU_NAME=${TPU_NAME:?set TPU_NAME}
ZONE=${ZONE:?set ZONE}
REPO_URL=${REPO_URL:?set REPO_URL to the spectral-jax git repository}
WORKDIR=${WORKDIR:?set WORKDIR to a run directory on a filesystem every host mounts}
CONFIG=${CONFIG:-configs/experiments/e3_architecture.py}
MODEL=${MODEL:-wrn_160}
DATA_DIR=${DATA_DIR:-/mnt/shared/tensorflow_datasets}

on_all_hosts() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command="$1"
}

on_all_hosts "pip install -q 'jax[tpu]' 'spectral-jax @ git+${REPO_URL}'"
on_all_hosts "spectral-jax train --config=${CONFIG} --workdir ${WORKDIR} --config.model=${MODEL} --config.data_dir=${DATA_DIR}"
# The analysis and report need one host only (worker 0 evaluates the lines on its chips).
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=0 \
  --command="spectral-jax analyze --workdir ${WORKDIR} && spectral-jax report --workdir ${WORKDIR}"
