"""Forward throughput of every registry model: parameters, GFLOPs per image, images per second.

    python benchmarks/model_throughput.py [--models wrn_32,pyramid_net] [--batch 64]
        [--input_shape 32,32,3] [--dtype float32] [--min_seconds 3]

For each model: the trainable parameter count and XLA's forward GFLOPs per image
(`spectral_jax.models.summary`), then the evaluation-mode forward pass on a batch of random
standardized images, jitted and compiled once outside the timed region, run until at least
`--min_seconds` have passed (and at least twice). Images/s = batch * iterations / seconds.
Prints one row per model as it finishes, on whatever backend JAX picks.
"""

from __future__ import annotations

import argparse
import time

import jax

from spectral_jax import models
from spectral_jax.config import base_config
from spectral_jax.models import summary


def forward_images_per_second(name: str, config, input_shape, batch: int, min_seconds: float) -> tuple[float, float]:
    """-> (images per second, compile seconds) of the jitted evaluation forward pass."""
    config.model = name
    model, variables = models.create_model(config, input_shape, 10, jax.random.key(0))
    images = jax.random.normal(jax.random.key(1), (batch, *input_shape))
    start = time.perf_counter()
    forward = jax.jit(model.apply_fn).lower(variables, images).compile()
    compile_seconds = time.perf_counter() - start
    forward(variables, images).block_until_ready()  # warm-up
    iterations, start = 0, time.perf_counter()
    while iterations < 2 or time.perf_counter() - start < min_seconds:
        forward(variables, images).block_until_ready()
        iterations += 1
    return batch * iterations / (time.perf_counter() - start), compile_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(models.model_names()))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--input_shape", default="32,32,3")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--min_seconds", type=float, default=3.0)
    args = parser.parse_args()
    input_shape = tuple(int(s) for s in args.input_shape.split(","))
    config = base_config()
    config.dtype = args.dtype

    print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), batch {args.batch}, "
          f"input {input_shape}, dtype {args.dtype}")
    print(f"{'model':<16} {'params':>10} {'GFLOPs/image':>12} {'images/s':>10} {'compile s':>9}")
    for name in args.models.split(","):
        row = summary.model_row(config, name, input_shape, 10)
        rate, compile_seconds = forward_images_per_second(name, config, input_shape, args.batch, args.min_seconds)
        print(f"{name:<16} {row.params:>10d} {row.gflops:>12.4f} {rate:>10.1f} {compile_seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
