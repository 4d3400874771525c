"""Lines per second of the interpolation analysis against the chunk size, and against a
bare forward pass over the same number of images.

    python benchmarks/analysis_chunks.py [--input_shape 8,8,1] [--num_points 64] [--lines 256]

Prints, for each chunk size C (lines per compiled call): lines/s, and the ratio of the full
analysis (gather, standardize, line points, forward, softmax, FFT, statistics) to a bare jitted
forward of the same C*M images. Compile time is excluded and reported separately.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import models
from spectral_jax.config import base_config
from spectral_jax.spectral import LineEvaluator


def timed(fn, repeats=3):
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input_shape", default="8,8,1")
    p.add_argument("--model", default="cnn")
    p.add_argument("--num_points", type=int, default=64)
    p.add_argument("--lines", type=int, default=256)
    p.add_argument("--chunks", default="1,2,4,8,16,32")
    args = p.parse_args()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    config = base_config()
    config.model = args.model
    model, variables = models.create_model(config, shape, 10, jax.random.key(0))
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, size=(512,) + shape, dtype=np.uint8))
    mean, std = np.full(shape[-1], 0.5, np.float32), np.full(shape[-1], 0.25, np.float32)
    pairs = rng.integers(0, 512, size=(args.lines, 2))
    forward = jax.jit(model.apply_fn)
    print(f"backend={jax.default_backend()} model={args.model} input={shape} M={args.num_points} lines={args.lines}")
    print(f"{'chunk':>6} {'lines/s':>10} {'analysis/forward':>17} {'compile_s':>10}")
    for c in (int(x) for x in args.chunks.split(",")):
        ev = LineEvaluator(model.apply_fn, args.num_points, chunk_lines=c)
        t0 = time.perf_counter()
        ev(variables, images, pairs[:c], mean, std)
        compile_s = time.perf_counter() - t0
        t = timed(lambda: ev(variables, images, pairs, mean, std))
        batch = jnp.zeros((c * args.num_points,) + shape, jnp.float32)
        n_calls = -(-args.lines // c)
        t_fwd = timed(lambda: [forward(variables, batch) for _ in range(n_calls)][-1].block_until_ready())
        print(f"{c:>6} {args.lines / t:>10.1f} {t_fwd / t:>17.3f} {compile_s:>10.2f}")


if __name__ == "__main__":
    main()
