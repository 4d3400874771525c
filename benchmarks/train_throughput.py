"""Throughput of the full training loop against the bare jitted train step, in one run.

    python benchmarks/train_throughput.py [--models cnn,wrn_32] [--epochs 4]

For each case prints `train_loop_vs_step_<model>: R`, where R = images/s of the whole loop
(batch gather, augmentation/label pipeline, per-epoch evaluation, metrics files and an orbax
checkpoint every epoch; measured over epochs 2..E, so compilation is excluded) divided by
images/s of the bare jitted train step (loss, gradient, update) on a fixed device-resident
batch. Goal: >= 0.90. Cases: `cnn` on digits; `wrn_32` (when registered) on synthetic
32x32x3 data.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectral_jax import data as data_lib
from spectral_jax import io, models
from spectral_jax.config import base_config
from spectral_jax.data.dataset import Dataset, Split, channel_stats
from spectral_jax.train import loop
from spectral_jax.train.step import init_state, l2_penalty
from spectral_jax.train.optimizer import make_optimizer


def synthetic_cifar(n_train=2048, n_test=512, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    tr = Split(rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.int32))
    te = Split(rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.int32))
    mean, std = channel_stats(tr.images)
    return Dataset("synthetic32", 10, mean, std, {"train": tr, "test": te})


def bare_step_images_per_second(config, dataset, repeats: int) -> float:
    model, variables = models.create_model(config, dataset.image_shape, dataset.num_classes, jax.random.key(0))
    opt, _ = make_optimizer(config, 1000)
    state = init_state(variables, opt)
    x = jax.device_put(jnp.asarray(np.random.default_rng(0).normal(size=(config.batch_size,) + dataset.image_shape),
                                   jnp.float32))
    y = jax.nn.one_hot(jnp.arange(config.batch_size) % dataset.num_classes, dataset.num_classes)
    key = jax.random.key(1)

    @jax.jit
    def step(state):
        def loss_fn(p):
            logits, bs = model.apply({"params": p, "batch_stats": state["batch_stats"]}, x, train=True, key=key)
            return optax.softmax_cross_entropy(logits, y).mean() + config.weight_decay * l2_penalty(p), bs
        grads, bs = jax.grad(loss_fn, has_aux=True)(state["params"])
        upd, opt_state = opt.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], upd), "batch_stats": bs, "opt_state": opt_state,
                "step": state["step"] + 1}

    state = jax.block_until_ready(step(state))  # compile outside the timed region
    t0 = time.perf_counter()
    for _ in range(repeats):
        state = step(state)
    jax.block_until_ready(state)
    return repeats * config.batch_size / (time.perf_counter() - t0)


def loop_images_per_second(config, workdir) -> tuple[float, int]:
    loop.train_and_evaluate(config, workdir, quiet=True)
    records = io.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    steps = records[-1]["step"] - records[0]["step"]
    return steps * config.batch_size / (records[-1]["time"] - records[0]["time"]), steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="cnn,wrn_32")
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    data_lib.SOURCES.setdefault("synthetic32", lambda data_dir: synthetic_cifar())
    print(f"backend={jax.default_backend()} devices={jax.device_count()}")
    for name in args.models.split(","):
        if name not in models.BUILDERS:
            print(f"train_loop_vs_step_{name}: skipped (model not registered)")
            continue
        config = base_config()
        config.model = name
        config.epochs = args.epochs
        config.ckpt_keep, config.ckpt_every_epochs = 0, 1  # a checkpoint every epoch, all kept
        if name == "cnn":
            config.dataset, config.batch_size, config.lr = "digits", 32, 0.05  # the demo's setting
        else:
            config.dataset, config.batch_size = "synthetic32", 128
        dataset = data_lib.open_dataset(config.dataset)
        with tempfile.TemporaryDirectory() as tmp:
            loop_ips, steps = loop_images_per_second(config, os.path.join(tmp, "run"))
        bare_ips = bare_step_images_per_second(config, dataset, repeats=max(steps, 10))
        print(f"  {name}: loop {loop_ips:.0f} img/s over {steps} steps, bare step {bare_ips:.0f} img/s")
        print(f"train_loop_vs_step_{name}: {loop_ips / bare_ips:.3f}")


if __name__ == "__main__":
    main()
