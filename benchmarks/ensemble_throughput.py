"""An ensemble of K small models in one program against the same K runs one after another.

    python benchmarks/ensemble_throughput.py [--members 8] [--epochs 3] [--batch_size 32]

Trains the digits CNN K times with seeds 0..K-1 (the demo recipe, a checkpoint and an
evaluation every epoch), once as one ensemble (`train_runs`, jax.vmap over the K states) and
once as K separate runs, and prints

    ensemble_vs_separate_cnn: R        training images/s of the ensemble / of the separate runs,
                                       over epochs 2..E (compilation excluded)
    ensemble_vs_separate_cnn_wall: R   the same from the wall time of the whole calls (start-up,
                                       compilation and the first epoch included)

Goal on a GPU: >= 4 (a small model leaves most of an accelerator idle; the ensemble fills it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spectral_jax import config as config_lib
from spectral_jax import io
from spectral_jax.train import train_and_evaluate, train_runs


def steady(workdir: Path, batch_size: int) -> tuple[int, float]:
    """(training images, seconds) of a run over its epochs 2..E, from the epoch end times."""
    records = io.read_jsonl(workdir / "metrics.jsonl")
    return (records[-1]["step"] - records[0]["step"]) * batch_size, records[-1]["time"] - records[0]["time"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args()
    base = config_lib.load_config_file("configs/demo.py")
    base.epochs, base.batch_size, base.ckpt_keep = args.epochs, args.batch_size, 1
    configs = []
    for seed in range(args.members):
        c = base.copy_and_resolve_references()
        c.seed = seed
        configs.append(c)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        together = [root / "ensemble" / f"seed_{c.seed}" for c in configs]
        t0 = time.perf_counter()
        train_runs(configs, together, quiet=True)
        ensemble_wall = time.perf_counter() - t0
        spans = [steady(w, args.batch_size) for w in together]  # the members share one timeline
        ensemble_steady = sum(n for n, _ in spans) / max(s for _, s in spans)

        alone = [root / "separate" / f"seed_{c.seed}" for c in configs]
        t0 = time.perf_counter()
        for c, w in zip(configs, alone):
            train_and_evaluate(c, w, quiet=True)
        separate_wall = time.perf_counter() - t0
        spans = [steady(w, args.batch_size) for w in alone]  # one after another
        separate_steady = sum(n for n, _ in spans) / sum(s for _, s in spans)
    print(f"ensemble_vs_separate_cnn: {ensemble_steady / separate_steady:.3f}")
    print(f"ensemble_vs_separate_cnn_wall: {separate_wall / ensemble_wall:.3f}")


if __name__ == "__main__":
    main()
