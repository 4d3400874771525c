"""Devices: one mesh over all devices (all processes) with a `data` axis, and the sharding
helpers that training and analysis share.

The train step is data-parallel in the pmap sense (parameters and optimizer state replicated,
the batch split over `data`, gradients all-reduced), written as `jax.jit` with `NamedSharding`:
the same code runs on one CPU, eight GPUs or a multi-host slice. The analysis splits its lines
over the same axis. Multi-process runs call `initialize_distributed` first; only process 0
writes files other than checkpoints.

All device work is issued from the main thread, in one order on every process: a collective
issued from a second thread can leave the other devices waiting for it.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from spectral_jax.errors import ConfigError

DATA_AXIS = "data"

# XLA:CPU aborts the process when one device thread reaches a collective more than 40 s after
# another (a busy 2-core machine gets there); a real deadlock still ends, after these limits.
CPU_COLLECTIVE_FLAGS = {
    "--xla_cpu_collective_call_terminate_timeout_seconds": 300,
    "--xla_cpu_collective_timeout_seconds": 1800,
}


def set_cpu_collective_timeouts() -> None:
    """Adds generous CPU collective timeouts to XLA_FLAGS; flags the user already set win.

    Takes effect only before the first use of a jax backend (spectral-jax calls it on import)."""
    flags = os.environ.get("XLA_FLAGS", "")
    present = {f.split("=")[0] for f in flags.split()}
    extra = [f"{k}={v}" for k, v in CPU_COLLECTIVE_FLAGS.items() if k not in present]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, timeout_s: int = 300) -> None:
    """`jax.distributed.initialize`, from arguments or the environment (SLURM, TPU, ...).

    Does nothing when no argument is given and the environment names no cluster. On CPU the
    collectives go through gloo.
    """
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError("Give all of --coordinator, --num_processes and --process_id, or none of them.")
    if not any(given) and not _cluster_env():
        return
    # Only affects CPU devices (and must not query the backend: that would initialize it).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {"initialization_timeout": timeout_s}
    if coordinator is not None:
        kwargs.update(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    jax.distributed.initialize(**kwargs)


def _cluster_env() -> bool:
    return any(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES"))


def is_main_process() -> bool:
    return jax.process_index() == 0


def make_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, axis `data`, Auto sharding."""
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def put_replicated(tree, mesh: Mesh):
    """Host arrays (identical on every process) -> arrays replicated on every device."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def put_batch(tree, mesh: Mesh):
    """Host arrays holding the whole global batch (identical on every process) -> arrays split
    over the `data` axis. (Multi-process: each process keeps only the rows of its devices.)"""
    sharding = batch_sharded(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx]), tree)


def to_host(tree):
    """Replicated device arrays -> numpy, on any process (an explicit copy of the local replica)."""
    def local(x):
        return x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable else x

    return jax.device_get(jax.tree.map(local, tree))


# XLA:CPU (seen with jaxlib 0.10.2) can deadlock when the host dispatches more than about 32
# multi-device programs ahead of the devices: each CPU device admits at most 32 executions in
# flight, the launch that finds the limit reached blocks a PjRt worker thread, and one device's
# part of an already-launched program then never starts, so the other device waits in a
# collective until XLA aborts the process ("Termination timeout ... Expected 2 threads to join the
# rendezvous, but only 1 of them arrived"). Loops that dispatch one program after another wait
# for their latest result every `max_steps_ahead()` dispatches (`Pacer`), so far fewer are ever
# in flight. (Raising XLA's collective time-outs cannot help here: the device never arrives.)
CPU_MAX_STEPS_AHEAD = 8


def max_steps_ahead() -> int:
    """How many programs a loop may dispatch before waiting for the latest; 0 = no limit.

    Only multi-device CPU needs a limit (see CPU_MAX_STEPS_AHEAD); accelerators keep their full
    asynchronous pipeline."""
    if jax.local_device_count() > 1 and jax.default_backend() == "cpu":
        return CPU_MAX_STEPS_AHEAD
    return 0


class Pacer:
    """`result = pace(dispatch(...))` in a loop of dispatches: every `max_steps_ahead()` results
    it waits for the latest one, bounding the programs in flight (see CPU_MAX_STEPS_AHEAD)."""

    def __init__(self):
        self.every, self.count = max_steps_ahead(), 0

    def __call__(self, result):
        self.count += 1
        if self.every and self.count % self.every == 0:
            jax.block_until_ready(result)
        return result


def check_divisible(batch_size: int, what: str = "batch_size") -> None:
    n = jax.device_count()
    if batch_size % n:
        raise ConfigError(f"{what}={batch_size} is not divisible by the {n} devices of the data-parallel mesh; "
                          f"use a multiple of {n}.")
