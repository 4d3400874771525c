"""Throughput and memory of the interpolation analysis, as ratios measured in one run.

    python benchmarks/analysis_throughput.py [--lines 96] [--wide_lines 32] [--num_points 64]

Prints one line each (compile and forward-batch measurement excluded, reported separately):

  analysis_vs_bare_small: R       analysis images/s (line points through the network, statistics
  analysis_vs_bare_wide: R        included) / the best images/s of the bare jitted forward on
                                  device-resident images over batch sizes 8-512; a WRN with widths
                                  16/32/64 (small) and 64/128/256 (wide), depth 10, 32x32x3.
  analysis_vs_bare_small_linear_estimator: R   the same with estimator=linear (the first
                                  release's), on the same forward batch, and
  cubic_vs_linear_estimator_small: R            their ratio (the default's cost: >= 0.95 wanted).
  analysis_vs_reference_small: R  speed-up over a reference-style pipeline on the same lines (host
                                  numpy line building, forward in batches of 200, per-line numpy
                                  softmax and FFT, as in the paper's released code).
  series_vmap_vs_loop_small: R    8 checkpoints stacked with jax.vmap / one by one (images/s); the
                                  backend's default (`layout.DEFAULT_STACK`) should be the faster.
  memory_100k_vs_1k: R            peak memory for 100,000 lines / for 1,000 lines (64 points,
                                  logits not saved), each in a fresh process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import models
from spectral_jax.config import base_config
from spectral_jax.spectral import LineEvaluator, layout, pair_lines

SHAPE = (32, 32, 3)
BARE_BATCHES = (8, 16, 32, 48, 64, 128, 256, 512)


def best_of(fn, repeats=2):
    fn()  # compile and warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def wrn(widen_factor: int):
    config = base_config()
    config.model, config.wrn.depth, config.wrn.widen_factor = "wrn", 10, widen_factor
    return models.create_model(config, SHAPE, 10, jax.random.key(0))


def bare_forward_rate(apply_fn, variables, seconds=1.0) -> tuple[float, int]:
    """(best images/s, its batch) of the jitted forward over BARE_BATCHES, images on the device."""
    forward = jax.jit(apply_fn)
    best = (0.0, 0)
    for b in BARE_BATCHES:
        x = jax.random.normal(jax.random.key(1), (b, *SHAPE))
        forward(variables, x).block_until_ready()
        n, t0 = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < seconds:
            forward(variables, x).block_until_ready()
            n += 1
        best = max(best, (b * n / (time.perf_counter() - t0), b))
    return best


def test_data(lines: int):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(256, *SHAPE), dtype=np.uint8)
    pairs = np.stack([np.arange(lines) % 256, (np.arange(lines) * 7 + 3) % 256], 1)
    return images, np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32), pair_lines(pairs)


def analysis_rate(model, variables, lines: int, m: int, estimator: str = "cubic",
                  forward_batch: int = 0, repeats: int = 2) -> tuple[float, LineEvaluator, float]:
    """(images/s of the tuned analysis, the evaluator, seconds spent measuring the forward batch)."""
    images, mean, std, line_set = test_data(lines)
    ev = LineEvaluator(model.apply_fn, m, save_logits=False, estimator=estimator, forward_batch=forward_batch)
    t0 = time.perf_counter()
    prepared = ev.prepare(variables, images, line_set, mean, std)
    tune_s = time.perf_counter() - t0
    t = best_of(lambda: ev.evaluate(prepared), repeats)
    return lines * m / t, ev, tune_s


def reference_pipeline(model, variables, lines: int, m: int) -> float:
    """Seconds of the released code's style on the same lines (host numpy, batches of 200)."""
    images, mean, std, line_set = test_data(lines)
    x = ((images.astype(np.float32) / 255 - mean) / std)
    forward = jax.jit(model.apply_fn)

    def run():
        t = np.arange(m, dtype=np.float32)[:, None, None, None] / (m - 1)
        points = np.concatenate([(1 - t) * x[a] + t * x[b] for a, b in line_set.pairs])
        logits = np.concatenate([np.asarray(forward(variables, points[i:i + 200]))
                                 for i in range(0, len(points), 200)])
        out = []
        for z in logits.reshape(lines, m, -1):
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            r = np.linalg.norm(p - p[0], axis=1)
            power = np.abs(np.fft.fftshift(np.fft.fft(r))) ** 2
            out.append((power.sum(), np.linalg.norm(np.diff(p, axis=0), axis=1).max(), r.max()))
        return out

    return best_of(run)


def series_ratio(model, variables, lines: int, m: int, k: int = 8) -> float:
    images, mean, std, line_set = test_data(lines)
    checkpoints = [jax.tree.map(lambda v, s=s: v * (1 + 0.01 * s), variables) for s in range(k)]
    ev = LineEvaluator(model.apply_fn, m, save_logits=False)
    one = ev.prepare(variables, images, line_set, mean, std)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *checkpoints)
    both = one.__class__(**{**one.__dict__, "variables": stacked, "stacked": True})
    loop = best_of(lambda: [ev.evaluate(one.__class__(**{**one.__dict__, "variables": c})) for c in checkpoints])
    vmapped = best_of(lambda: ev.evaluate(both))
    return loop / vmapped


MEMORY_SCRIPT = """
import resource, sys, numpy as np, jax, jax.numpy as jnp
from spectral_jax.spectral import LineEvaluator, pair_lines
lines = int(sys.argv[1])
rng = np.random.default_rng(0)
images = rng.normal(size=(4096, 8, 8, 1)).astype(np.float32)
w = jnp.asarray(rng.normal(size=(64, 10)), jnp.float32)
pairs = np.stack([np.arange(lines) % 4096, (np.arange(lines) * 7 + 1) % 4096], 1)
ev = LineEvaluator(lambda v, x: x.reshape(len(x), -1) @ v, 64, chunk_lines=256, save_logits=False)
out = ev(w, images, pair_lines(pairs))
assert out["hf_power"].shape == (lines,)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_kb(lines: int) -> int:
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(lines)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=96, help="lines for the small WRN")
    p.add_argument("--wide_lines", type=int, default=32, help="lines for the wide WRN")
    p.add_argument("--num_points", type=int, default=64)
    p.add_argument("--skip_memory", action="store_true")
    args = p.parse_args()
    m = args.num_points
    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), {jax.device_count()} device(s), "
          f"input {SHAPE}, M = {m}", flush=True)
    nets = {}
    for name, widen_factor, lines in (("small", 1, args.lines), ("wide", 4, args.wide_lines)):
        model, variables = nets[name] = wrn(widen_factor)
        bare, bare_b = bare_forward_rate(model.apply_fn, variables)
        rate, ev, tune_s = analysis_rate(model, variables, lines, m)
        print(f"  ({name}: bare best {bare:.0f} img/s at batch {bare_b}; analysis {rate:.0f} img/s, forward batch "
              f"{ev.forward_batch} measured in {tune_s:.1f} s)", flush=True)
        print(f"analysis_vs_bare_{name}: {rate / bare:.3f}", flush=True)
        if name == "small":
            small_rate = rate
            # The first release's estimator on the same forward batch: what the cubic detrend costs
            # (both measured again, best of 5 each, so that the ratio compares like with like).
            cubic, _, _ = analysis_rate(model, variables, lines, m, "cubic", ev.forward_batch, repeats=5)
            linear, _, _ = analysis_rate(model, variables, lines, m, "linear", ev.forward_batch, repeats=5)
            print(f"analysis_vs_bare_small_linear_estimator: {linear / bare:.3f}", flush=True)
            print(f"cubic_vs_linear_estimator_small: {cubic / linear:.3f}", flush=True)
    small, small_vars = nets["small"]
    t_ref = reference_pipeline(small, small_vars, args.lines, m)
    print(f"analysis_vs_reference_small: {t_ref / (args.lines * m / small_rate):.3f}", flush=True)
    ratio = series_ratio(small, small_vars, max(8, args.lines // 4), m)
    default = layout.default_stack()
    print(f"series_vmap_vs_loop_small: {ratio:.3f}  (default on {jax.default_backend()}: "
          f"{'one by one' if default == 1 else 'stacked'})", flush=True)
    if not args.skip_memory:
        small_kb, big_kb = peak_memory_kb(1_000), peak_memory_kb(100_000)
        print(f"  (peak RSS: 1k lines {small_kb / 1024:.0f} MiB, 100k lines {big_kb / 1024:.0f} MiB)")
        print(f"memory_100k_vs_1k: {big_kb / small_kb:.3f}", flush=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
