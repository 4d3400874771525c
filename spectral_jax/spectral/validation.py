"""What each statistic measures: signals of known content along a line, through the evaluator.

A "model" whose class-0 logit along line i is g_i(t) (t = x·e_i, the other logits 0) is analysed
with `signal=class_logit`, so the signal is exactly g_i(t) - g_i(0) sampled by the evaluator itself
(points, forward pass, estimator, cutoff, floor): polynomials of degree <= 3 (no high-frequency
content at all), logistic transitions of increasing sharpness, sinusoids below and above the
cutoff, a step and white noise. docs/analysis.md "What each statistic measures" shows the table
this prints, and tests/test_statistics_validation.py asserts what the default estimator must do.

    python -m spectral_jax.spectral.validation          # the doc's table (about a minute on a CPU)
"""

from __future__ import annotations

import argparse
from typing import Callable

import jax.numpy as jnp
import numpy as np

from spectral_jax.spectral.evaluate import LineEvaluator

NOISE_SEED = 0


def _logistic(a: float) -> Callable:
    return lambda t: 1.0 / (1.0 + jnp.exp(-a * (t - 0.5)))


def _sine(c: float) -> Callable:
    return lambda t: jnp.sin(2 * jnp.pi * c * t)


# name -> (g(t) on [0, 1], what it is). Every g is smooth in t except the step and the noise.
SIGNALS: dict[str, tuple[Callable, str]] = {
    "linear": (lambda t: t, "t"),
    "quadratic": (lambda t: 2 * t**2, "2t²"),
    "cubic": (lambda t: 4 * (t**3 - t**2 / 2), "4(t³ − t²/2)"),
    "logistic_5": (_logistic(5.0), "logistic, sharpness 5"),
    "logistic_20": (_logistic(20.0), "logistic, sharpness 20"),
    "logistic_80": (_logistic(80.0), "logistic, sharpness 80"),
    "sine_3": (_sine(3.0), "sin 2π·3t (below the cutoff)"),
    "sine_12": (_sine(12.0), "sin 2π·12t (above the cutoff)"),
    "step": (lambda t: jnp.where(t >= 0.5, 1.0, 0.0), "step at t = 1/2"),
    "noise": (None, "white noise, σ = 0.01 per point"),
}
POLYNOMIALS = ("linear", "quadratic", "cubic")
SINES = ("sine_3", "sine_12")


def _nearest_sample(values: np.ndarray) -> Callable:
    """g(t) = values[k] for the sample point t_k = k / (M - 1) nearest t."""
    m = len(values)
    return lambda t: jnp.asarray(values)[jnp.clip(jnp.round(t * (m - 1)), 0, m - 1).astype(jnp.int32)]


def known_signal_model(num_points: int, names=tuple(SIGNALS)) -> tuple[Callable, np.ndarray, np.ndarray]:
    """(apply_fn, images [2D, D], pairs [D, 2]): line i goes from 0 to e_i and its class-0 logit
    is g_i(x_i) (noise: a fixed random value at each of the `num_points` sample points)."""
    dim = len(names)
    noise = np.random.default_rng(NOISE_SEED).normal(0.0, 0.01, num_points).astype(np.float32)
    noise[0] = 0.0

    def apply_fn(_, x):
        columns = []
        for i, name in enumerate(names):
            g, _ = SIGNALS[name]
            t = x[:, i]
            if g is None:  # the sample point nearest t: t_k = k / (M - 1)
                g = _nearest_sample(noise)
            columns.append(g(t) - g(jnp.zeros_like(t)))
        logit = jnp.sum(jnp.stack(columns, -1), -1)  # only one coordinate moves along each line
        return jnp.stack([logit, jnp.zeros_like(logit)], -1)

    images = np.concatenate([np.zeros((dim, dim), np.float32), np.eye(dim, dtype=np.float32)])
    pairs = np.stack([np.arange(dim), dim + np.arange(dim)], 1)
    return apply_fn, images, pairs


def measure(num_points: int, estimator: str = "cubic", **settings) -> dict[str, dict[str, float]]:
    """name -> {hf_power, per_r2 (hf_power / r_end², or / amplitude² for the sines and the noise),
    hf_fraction, centroid, max_grad, r_end, hf_floor} at `num_points` points per line."""
    apply_fn, images, pairs = known_signal_model(num_points)
    evaluator = LineEvaluator(apply_fn, num_points, signal="class_logit", estimator=estimator, save_logits=False,
                              forward_batch=num_points, **settings)
    stats = evaluator(None, images, pairs)
    out = {}
    for i, name in enumerate(SIGNALS):
        row = {k: float(stats[k][i]) for k in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end", "hf_floor")}
        scale = 1.0 if name in SINES else 0.01**2 if name == "noise" else row["r_end"] ** 2
        row["per_r2"] = row["hf_power"] / scale
        out[name] = row
    return out


def table(estimators=("cubic", "hann", "linear"), points=(64, 128, 256, 512)) -> str:
    """The markdown table of hf_power per unit r_end² (docs/analysis.md)."""
    results = {(e, m): measure(m, e) for e in estimators for m in points}
    head = "| signal | " + " | ".join(f"{e}, M={m}" for e in estimators for m in points) + " |"
    lines = [head, "|" + "---|" * (1 + len(estimators) * len(points))]
    for name, (_, what) in SIGNALS.items():
        cells = [f"{results[(e, m)][name]['per_r2']:.2g}" for e in estimators for m in points]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", default="cubic,hann,linear")
    parser.add_argument("--points", default="64,128,256,512")
    args = parser.parse_args(argv)
    print(table(tuple(args.estimators.split(",")), tuple(int(m) for m in args.points.split(","))))


if __name__ == "__main__":
    main()
