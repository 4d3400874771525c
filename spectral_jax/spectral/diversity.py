"""Class diversity against within-class frequency (docs/methods.md §2.5, claim E8).

Per class c: the mean hf_power and max_grad of its within-class lines, and its diversity,
the mean pairwise L2 distance of its images (standardized pixels) and of their penultimate
features (the model's `features_fn`). Across classes, the Spearman correlation of each
frequency statistic with each diversity, with a percentile bootstrap interval over classes
(classes resampled with replacement). The claim tested is rho > 0.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as scipy_stats

from spectral_jax.spectral.lines import WITHIN

COLUMNS = ("step", "class", "n_lines", "hf_power_mean", "max_grad_mean", "diversity_pixel", "diversity_feature",
           "n_images")
PAIRS = (("hf_power", "pixel"), ("hf_power", "feature"), ("max_grad", "pixel"), ("max_grad", "feature"))
BOOTSTRAP = 1000
LEVEL = 0.95


@jax.jit
def mean_pairwise_distance(x: jax.Array) -> jax.Array:
    """Mean ||x_i - x_j|| over pairs i < j of rows [n, ...] (n >= 2), from the Gram matrix."""
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    sq = jnp.sum(x * x, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    n = x.shape[0]
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    return jnp.sum(jnp.where(upper, jnp.sqrt(d2), 0.0)) / (n * (n - 1) / 2)


def class_frequency(results: dict[str, np.ndarray]) -> dict[int, dict[str, float]]:
    """class -> n_lines, hf_power_mean, max_grad_mean of its within-class lines."""
    within = results["kind"] == WITHIN
    out = {}
    for c in np.unique(results["labels"][within, 0]):
        sel = within & (results["labels"][:, 0] == c)
        out[int(c)] = {"n_lines": int(sel.sum()), "hf_power_mean": float(np.mean(results["hf_power"][sel])),
                       "max_grad_mean": float(np.mean(results["max_grad"][sel]))}
    return out


def class_diversity(images_by_class: dict[int, np.ndarray],
                    features: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[int, dict[str, float]]:
    """class -> diversity_pixel (and diversity_feature with `features`), n_images; standardized images."""
    out = {}
    for c, x in images_by_class.items():
        row = {"n_images": len(x), "diversity_pixel": float(mean_pairwise_distance(x)) if len(x) > 1 else float("nan")}
        if features is not None:
            row["diversity_feature"] = float(mean_pairwise_distance(features(x))) if len(x) > 1 else float("nan")
        out[c] = row
    return out


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman(x, y) -> float:
    """Spearman's rank correlation of the finite pairs (ties averaged); nan with fewer than 3."""
    x, y = _finite_pairs(x, y)
    return float(scipy_stats.spearmanr(x, y).statistic) if len(x) >= 3 else float("nan")


def spearman_with_interval(x: np.ndarray, y: np.ndarray, n_boot: int = BOOTSTRAP, level: float = LEVEL,
                           seed: int = 0) -> dict[str, float]:
    """Spearman rho of paired samples and its percentile bootstrap interval (pairs resampled)."""
    x, y = _finite_pairs(x, y)
    n = len(x)
    if n < 3:
        return {"rho": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_classes": n}
    rho = spearman(x, y)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    rx, ry = scipy_stats.rankdata(x[idx], axis=1), scipy_stats.rankdata(y[idx], axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    boot = np.where(den > 0, (rx * ry).sum(1) / np.where(den > 0, den, 1), np.nan)
    lo, hi = np.nanpercentile(boot, [50 * (1 - level), 50 * (1 + level)]) if np.isfinite(boot).any() else (np.nan,) * 2
    return {"rho": rho, "ci_low": float(lo), "ci_high": float(hi), "n_classes": n}


def diversity_table(step: int, frequency: dict[int, dict], diversity: dict[int, dict]) -> tuple[list[dict], dict]:
    """-> (CSV rows of `COLUMNS` per class, correlations {"hf_power~pixel": {...}, ...})."""
    rows = [{"step": step, "class": c, **frequency[c],
             "diversity_pixel": diversity[c]["diversity_pixel"],
             "diversity_feature": diversity[c].get("diversity_feature", float("nan")),
             "n_images": diversity[c]["n_images"]} for c in sorted(frequency) if c in diversity]
    correlations = {}
    for stat, kind in PAIRS:
        correlations[f"{stat}~{kind}"] = spearman_with_interval([r[f"{stat}_mean"] for r in rows],
                                                                [r[f"diversity_{kind}"] for r in rows])
    return rows, correlations
