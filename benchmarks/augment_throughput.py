"""Augmented images per second on the device, as a ratio to an identity pipeline, in one run.

Every pipeline is the train step's data path on CIFAR-sized data: gather a batch by index from
device-resident uint8 images, standardize, one-hot, then augment (nothing, for identity).
`--steps` batches run inside one compiled `fori_loop`, so Python dispatch does not dilute the
numbers; each pipeline is compiled and run once before timing, and compile time is printed
separately. The ratio is identity time / pipeline time (1.0 = augmentation is free).

Command:   python benchmarks/augment_throughput.py [--batch_size 256] [--steps 20] [--only NAME ...]
Hardware:  any; numbers are for the device JAX picks (printed).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.config import base_config
from spectral_jax.data import standardize
from spectral_jax.data.augment import make_augment_fn

MEAN = np.array([0.49139968, 0.48215841, 0.44653091], np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], np.float32)

REFERENCE = {"flip_crop": True, "cutout": 16}
PIPELINES = {
    "identity": {},
    "flip+crop": {"flip_crop": True},
    "flip+crop+cutout16 (reference)": REFERENCE,
    "mixup(0.1)": {"mixup_alpha": 0.1},
    "image_freq(p=1)": {"image_freq.probability": 1.0},
    "autoaugment+reference": {**REFERENCE, "policy": "autoaugment"},
    "randaugment(3,4)+reference": {**REFERENCE, "policy": "randaugment"},
    "full chain": {**REFERENCE, "policy": "autoaugment", "mixup_alpha": 0.1, "image_freq.probability": 0.5},
}


def make_run(settings: dict, images_shape, num_classes: int, batch_size: int, steps: int):
    config = base_config()
    for key, value in settings.items():
        group, _, name = key.rpartition(".")
        (config.augment[group] if group else config.augment)[name] = value
    augment = make_augment_fn(config, images_shape[1:], num_classes, MEAN, STD)

    def run(images_u8, labels, mean, std, key, probe):
        perm = jax.random.permutation(key, images_u8.shape[0])

        def body(i, acc):
            idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
            x = standardize(images_u8[idx], mean, std)
            y = jax.nn.one_hot(labels[idx], num_classes, dtype=jnp.float32)
            # Barriers materialize the batch before and after augmenting, as a train step would
            # (its model consumes the batch), so XLA cannot fuse the stages away.
            x, y = jax.lax.optimization_barrier((x, y))
            x, y = jax.lax.optimization_barrier(augment(jax.random.fold_in(key, i), x, y))
            # Consume the batch like a model's first layer would (a matrix-vector product with a
            # runtime vector): a plain jnp.sum gets CPU code that varies wildly per pipeline.
            return acc + jnp.sum(x.reshape(x.shape[0], -1) @ probe) + jnp.sum(y)

        return jax.lax.fori_loop(0, steps, body, jnp.zeros((), jnp.float32))

    return jax.jit(run)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per pipeline at least; the best is kept")
    parser.add_argument("--min_seconds", type=float, default=2.0, help="keep repeating until this much time is spent")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--only", nargs="*", default=None, help="pipeline names to run (identity always runs)")
    args = parser.parse_args(argv)

    n = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8))
    labels = jax.device_put(rng.integers(0, 10, (n,)).astype(np.int32))
    mean, std = jax.device_put(MEAN), jax.device_put(STD)
    probe = jax.device_put(np.ones(args.image_size * args.image_size * 3, np.float32))
    names = [p for p in PIPELINES if args.only is None or p == "identity" or p in args.only]

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}; "
          f"batch {args.batch_size}, {args.steps} batches per run, {args.image_size}x{args.image_size}x3, "
          f"best of >= {args.repeats} runs and >= {args.min_seconds:g} s")
    print(f"{'pipeline':34s} {'compile s':>9s} {'images/s':>12s} {'ratio':>7s}")
    base_rate = None
    for name in names:
        run = make_run(PIPELINES[name], images.shape, 10, args.batch_size, args.steps)
        t0 = time.perf_counter()
        run(images, labels, mean, std, jax.random.key(0), probe).block_until_ready()  # compile + first run, untimed
        compile_s = time.perf_counter() - t0
        best, spent, r = float("inf"), 0.0, 0
        while r < args.repeats or spent < args.min_seconds:  # cheap pipelines get more repeats
            t0 = time.perf_counter()
            run(images, labels, mean, std, jax.random.key(r + 1), probe).block_until_ready()
            elapsed = time.perf_counter() - t0
            best, spent, r = min(best, elapsed), spent + elapsed, r + 1
        rate = n / best
        base_rate = base_rate or rate
        print(f"{name:34s} {compile_s:9.1f} {rate:12,.0f} {rate / base_rate:7.3f}")


if __name__ == "__main__":
    main()
