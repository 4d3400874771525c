"""Evaluating a model along many lines: one compiled function over fixed-size chunks.

Per chunk of C lines, everything happens on the device in one jitted call: gather the pair
images, standardize (uint8 input), build the C x M line points, run `apply_fn`, and reduce
to the statistics of `spectrum.line_statistics`. Chunks are dispatched asynchronously and
their results stay on the device until one transfer at the end; the last chunk is padded,
so every chunk has the same shape and the function compiles once (for all checkpoints too).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import Mesh

from spectral_jax import parallel
from spectral_jax.data import standardize
from spectral_jax.spectral import spectrum

ApplyFn = Callable[[Any, jax.Array], jax.Array]

# Lines per chunk when `chunk_lines=0`. Measured with benchmarks/analysis_chunks.py: on a
# 2-core CPU small batches win (cache-sized); accelerators want large batches.
DEFAULT_CHUNK_LINES = {"cpu": 4, "gpu": 64, "tpu": 64}  # per device


def default_chunk_lines() -> int:
    return DEFAULT_CHUNK_LINES.get(jax.default_backend(), 32)


class LineEvaluator:
    """`LineEvaluator(apply_fn, num_points, chunk_lines, mode)(variables, images, pairs, ...)`.

    Keep one evaluator per model to reuse its compiled chunk function across checkpoints.
    `trace_count` counts how often the chunk function was traced (compiled).
    """

    def __init__(self, apply_fn: ApplyFn, num_points: int, chunk_lines: int = 0, mode: str = "detrended",
                 mesh: Mesh | None = None):
        if num_points < 8:
            raise ValueError(f"num_points must be >= 8, got {num_points}.")
        spectrum.line_positions(num_points, mode)  # validates mode
        self.apply_fn, self.num_points, self.mode = apply_fn, num_points, mode
        # With a mesh, each chunk's lines are split over the `data` axis (a multiple of its size).
        self.mesh = mesh if mesh is not None and mesh.size > 1 else None
        n = self.mesh.size if self.mesh is not None else 1
        per_device = chunk_lines or default_chunk_lines()
        self.chunk_lines = -(-per_device // n) * n if chunk_lines else per_device * n
        self.trace_count = 0
        self._chunk = jax.jit(self._chunk_impl)

    def _chunk_impl(self, variables, images, mean, std, pairs):
        self.trace_count += 1  # runs only while tracing
        if self.mesh is not None:
            pairs = jax.lax.with_sharding_constraint(pairs, parallel.batch_sharded(self.mesh))
        x = images if mean is None else standardize(images, mean, std)
        x0, x1 = x[pairs[:, 0]].astype(jnp.float32), x[pairs[:, 1]].astype(jnp.float32)
        points = spectrum.line_points(x0, x1, self.num_points, self.mode)  # [C, M, H, W, C]
        c, m = points.shape[:2]
        logits = self.apply_fn(variables, points.reshape((c * m,) + points.shape[2:]))
        logits = logits.reshape(c, m, -1).astype(jnp.float32)
        distance = jnp.linalg.norm((x1 - x0).reshape(c, -1), axis=-1)
        return {"logits": logits, **spectrum.line_statistics(logits, distance, self.mode)}

    def __call__(self, variables, images: jax.Array, pairs: np.ndarray, mean=None, std=None) -> dict[str, np.ndarray]:
        """Statistics of every line.

        Args:
          variables: the model's variables (anything `apply_fn` takes).
          images: the split, on the device: uint8 [N,H,W,C] (then give `mean`/`std`, in [0,1]
            pixel units) or already standardized float [N,H,W,C].
          pairs: int [P, 2] indices of each line's (x0, x1).
        Returns numpy arrays with leading dimension P: `logits` [P,M,K], `power` [P,M//2+1],
        `hf_power`, `hf_fraction`, `centroid`, `max_grad`, `r_end`, `logit_distance`.
        """
        pairs = np.asarray(pairs, np.int32)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
            raise ValueError(f"pairs must be a non-empty int array [P, 2], got shape {pairs.shape}.")
        if (images.dtype == jnp.uint8) != (mean is not None):
            raise ValueError("Give mean and std exactly when images are uint8 (they are standardized on device).")
        if mean is not None:
            mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        p, c = len(pairs), self.chunk_lines
        padded = np.concatenate([pairs, np.repeat(pairs[:1], (-p) % c, axis=0)])
        chunks = jnp.asarray(padded).reshape(-1, c, 2)
        results = [self._chunk(variables, images, mean, std, chunks[i]) for i in range(chunks.shape[0])]
        merged = jax.tree.map(lambda *xs: jnp.concatenate(xs)[:p], *results)
        return jax.device_get(merged)
