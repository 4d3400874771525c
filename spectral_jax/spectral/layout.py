"""How the analysis lays work out on a device: the forward batch, lines per chunk, and how
many checkpoints are stacked into one program.

The analysis is bound by the forward pass, and on a CPU the batch size alone moves its
throughput by 1.4-1.8x (a small net is fastest near 32-64 images, a wide one near 16-32, and
512 is far slower), unlike accelerators, which want large batches. So the forward batch is
measured once per model, input shape and backend (a bare jitted forward over CANDIDATES,
cached for the process), and a chunk of lines is split into micro-batches of that size.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from spectral_jax.errors import ConfigError

# Forward batches per device tried by `tune_forward_batch`.
CANDIDATES = (16, 32, 64, 128, 256)
MIN_CHUNK_POINTS = 256  # per device: fewer makes per-chunk dispatch and statistics noticeable
# Checkpoints stacked with jax.vmap in one program, per backend (0: as many as fit in memory).
# benchmarks/analysis_throughput.py, `series_vmap_vs_loop_small`: on a 2-core CPU vmapping the
# convolutions over stacked weights is slower than one checkpoint after another.
DEFAULT_STACK = {"cpu": 1}
MAX_STACK = 16
_TUNED: dict[tuple, int] = {}


def tune_forward_batch(apply_fn: Callable, variables: Any, point_shape: Sequence[int],
                       candidates: Sequence[int] = CANDIDATES, seconds: float = 0.15) -> int:
    """The per-device forward batch with the most images/s of the bare jitted forward (cached)."""
    leaves = jax.tree.leaves(variables)
    key = (getattr(apply_fn, "__qualname__", repr(apply_fn)), tuple(point_shape), jax.default_backend(),
           tuple((x.shape, str(x.dtype)) for x in leaves))
    if key in _TUNED:
        return _TUNED[key]
    forward = jax.jit(apply_fn)
    best, best_rate = candidates[0], 0.0
    for b in candidates:
        x = jnp.zeros((b, *point_shape), jnp.float32)
        forward(variables, x).block_until_ready()  # compile and warm up
        n, t0 = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < seconds:
            forward(variables, x).block_until_ready()
            n += 1
        rate = b * n / (time.perf_counter() - t0)
        if rate > best_rate:
            best, best_rate = b, rate
    _TUNED[key] = best
    return best


def chunk_layout(num_points: int, devices: int, chunk_lines: int = 0, forward_batch: int = 0) -> tuple[int, int]:
    """-> (lines per chunk, forward batch) for lines of `num_points` points over `devices`.

    Both global (all devices). The chunk is a multiple of `devices` and its C*N points split
    into whole forward batches; a given `chunk_lines` without `forward_batch` is one forward
    pass per chunk (today's behaviour); `forward_batch` (per device) alone gives the smallest
    chunk of at least MIN_CHUNK_POINTS points per device made of whole batches."""
    n = num_points
    if chunk_lines and chunk_lines % devices:
        chunk_lines = -(-chunk_lines // devices) * devices
    if not forward_batch:
        c = chunk_lines or devices * max(1, -(-MIN_CHUNK_POINTS // n))
        return c, c * n
    if chunk_lines:
        if (chunk_lines // devices * n) % forward_batch:
            raise ConfigError(f"analysis.chunk_lines={chunk_lines} lines x {n} points is not a whole number of "
                              f"forward batches of {forward_batch} per device; set one of them to 0 (chosen).")
        return chunk_lines, forward_batch * devices
    lines = forward_batch // math.gcd(forward_batch, n)  # the fewest lines whose points fill whole batches
    return devices * lines * max(1, -(-MIN_CHUNK_POINTS // (lines * n))), forward_batch * devices


def default_stack(backend: str | None = None) -> int:
    return DEFAULT_STACK.get(backend or jax.default_backend(), 0)


def stack_size(variables: Any, work_bytes: int | Callable[[], int], num_checkpoints: int, stack: int = 0) -> int:
    """Checkpoints per program: `stack` if given, the backend's default, else as many as fit in
    half the free device memory, each taking two copies of the variables (restored, and its slice
    of the stacked ones) and `work_bytes` (`LineEvaluator.work_bytes`, or a function giving it,
    called only when needed: it compiles)."""
    stack = stack or default_stack()
    if stack:
        return max(1, min(stack, num_checkpoints))
    work_bytes = work_bytes() if callable(work_bytes) else work_bytes
    per = 2 * sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(variables)) + work_bytes
    return max(1, min(num_checkpoints, MAX_STACK, int(0.5 * free_memory_bytes() // max(per, 1))))


def free_memory_bytes() -> int:
    """Free memory of the first device (host RAM on CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
