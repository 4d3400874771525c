#!/usr/bin/env bash
# One short device check for a session that is lent a GPU (see the device tool's README):
# the GPU-relevant tests and the throughput benchmarks, printed as ratios measured in one run.
#   bash benchmarks/gpu_check.sh            (from the repository root, on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import jax; print('devices:', jax.devices())"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 240 python -m pytest -q -x tests/test_spectrum.py tests/test_evaluate.py tests/test_train.py tests/test_noise.py \
  -p no:cacheprovider 2>&1 | tail -5
timeout 120 python benchmarks/analysis_chunks.py --input_shape 32,32,3 --lines 1024 --chunks 16,64,256 2>&1 | grep -v WARN
timeout 200 python benchmarks/train_throughput.py --models cnn,wrn_32 --epochs 3 2>&1 | grep -v WARN
