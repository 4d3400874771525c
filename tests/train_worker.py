"""Runs one training in its own process (for device-count, multi-process and kill tests).

    python tests/train_worker.py WORKDIR OUT.npz [--coordinator H:P --num_processes N --process_id I]
        [--config.KEY=VALUE ...]

Set XLA_FLAGS=--xla_force_host_platform_device_count=N in the environment for fake devices.
Writes the final params (flattened, as seen by this process) to OUT.npz.
"""

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("--coordinator")
    p.add_argument("--num_processes", type=int)
    p.add_argument("--process_id", type=int)
    args, rest = p.parse_known_args()

    from spectral_jax import parallel

    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id, timeout_s=60)

    import jax
    import numpy as np

    from spectral_jax import config as config_lib
    from spectral_jax.train import checkpoints, train_and_evaluate
    from spectral_jax import models

    here = os.path.dirname(os.path.abspath(__file__))
    config = config_lib.load_config_file(os.path.join(here, "..", "configs", "demo.py") + ":smoke")
    config_lib.apply_overrides(config, config_lib.parse_overrides(rest))
    train_and_evaluate(config, args.workdir, quiet=True)
    abstract = models.create_model(config, (8, 8, 1), 10)[1]
    step = checkpoints.valid_steps(args.workdir)[-1]
    variables = checkpoints.restore_variables(args.workdir, step, abstract)
    flat = {jax.tree_util.keystr(k): np.asarray(parallel.to_host(v))
            for k, v in jax.tree_util.tree_leaves_with_path(variables)}
    np.savez(args.out, devices=jax.device_count(), processes=jax.process_count(), step=step, **flat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
