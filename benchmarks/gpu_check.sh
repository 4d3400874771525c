#!/usr/bin/env bash
# One short check on a machine with a GPU (about 10 minutes): the tests of the statistics, the
# line evaluator, training, ensembles and noise fitting, then the analysis, training and ensemble
# throughput benchmarks, each printed as ratios measured in one run.
#   bash benchmarks/gpu_check.sh            (from the repository root, on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import jax; print('devices:', jax.devices())"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 240 python -m pytest -q -x tests/test_spectrum.py tests/test_evaluate.py tests/test_train.py tests/test_noise.py \
  tests/test_ensemble.py \
  -p no:cacheprovider 2>&1 | tail -5
timeout 300 python benchmarks/analysis_throughput.py --lines 1024 --wide_lines 256 2>&1 | grep -v WARN
timeout 200 python benchmarks/train_throughput.py --models cnn,wrn_32 --epochs 3 2>&1 | grep -v WARN
timeout 200 python benchmarks/ensemble_throughput.py --members 8 --epochs 3 2>&1 | grep -v WARN
