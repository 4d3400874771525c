"""Matplotlib figures of saved analysis results (nothing is recomputed).

Files are drawn on `matplotlib.figure.Figure` objects (no pyplot state, any backend), so a
notebook keeps its own backend; `new_axes` is the pyplot axes a notebook plot goes to.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spectral_jax import io
from spectral_jax.spectral import spectrum
from spectral_jax.spectral.lines import KINDS
from spectral_jax.spectral.results import standard_error

COLORS = {"within": "tab:blue", "between": "tab:red", "random": "tab:green", "fourier": "tab:purple",
          "f": "tab:orange", "1/f": "tab:brown", "gradient": "tab:pink", "custom": "tab:olive",
          "endpoints": "tab:cyan", "plane": "tab:gray"}


def new_axes():
    import matplotlib.pyplot as plt  # pyplot only for interactive use: files never touch its state

    return plt.subplots(figsize=(6, 4))[1]


def save(fig: Figure, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")


def plot_spectra(ax, arrays: dict[str, np.ndarray], title: str = "") -> None:
    """Mean one-sided spectrum (± s.e.m.) per kind of line with the high-frequency cutoff, or for
    planes the mean radial profile of the 2-D spectrum."""
    settings = settings_of(arrays)
    if "radial" in arrays:
        _plot_radial(ax, arrays, settings, title)
        return
    power, kind = arrays["power"], arrays["kind"]
    freq = arrays["frequency"] if "frequency" in arrays else np.arange(power.shape[1])
    for k in np.unique(kind):
        sel = kind == k
        name = KINDS[int(k)]
        mean = power[sel].mean(0)
        sem = standard_error(power[sel])
        ax.plot(freq[1:], mean[1:], color=COLORS.get(name), label=f"{name} ({sel.sum()} lines)")
        ax.fill_between(freq[1:], np.maximum(mean - sem, 1e-30)[1:], (mean + sem)[1:], color=COLORS.get(name),
                        alpha=0.2)
    sampling = settings.get("sampling", "count")
    estimator = settings.get("estimator", "linear")  # results written before the key: linear
    cutoff, unit = spectrum.resolve_cutoff(sampling, settings.get("hf_cutoff", 0.0), settings.get("hf_cutoff_unit", ""),
                                           estimator)
    length = (2 * (power.shape[1] - 1) if sampling == "distance" or "num_points" not in settings
              else spectrum.fft_length(int(settings["num_points"]), sampling, estimator))
    at = None
    if unit == "bins":
        at = (cutoff or spectrum.hf_cutoff_bin(length)) * (freq[1] if sampling == "distance" else 1.0)
        label = f"high-frequency cutoff ({cutoff or spectrum.hf_cutoff_bin(length):g} bins)"
    elif unit == "cycles_per_unit" and sampling == "distance":
        at, label = cutoff, f"high-frequency cutoff ({cutoff:g} cycles/unit)"
    elif unit == "cycles_per_line" and sampling != "distance":  # bin j is j cycles per line (L = M - 1)
        intervals = settings["num_points"] - (sampling != "reference")
        at, label = cutoff * length / intervals, f"high-frequency cutoff ({cutoff:g} cycles/line)"
    if at is not None:
        ax.axvline(at, color="gray", ls="--", lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("frequency (cycles per unit)" if sampling == "distance" else "frequency (cycles per line)")
    ax.set_ylabel("mean power |rfft(d)|²")
    ax.set_title(title or f"{settings.get('lines', 'pairs')} lines, {sampling} sampling, {settings.get('signal', '')}")
    ax.legend(fontsize=8)


def _plot_radial(ax, arrays, settings, title) -> None:
    radial = arrays["radial"]
    rings = np.arange(radial.shape[1])
    mean = radial.mean(0)
    ax.plot(rings[1:], mean[1:], color="black", label=f"mean over {len(radial)} planes")
    for r in radial[:5]:
        ax.plot(rings[1:], r[1:], color="gray", lw=0.5, alpha=0.6)
    grid = 2 * (radial.shape[1] - 1)
    ax.axvline(grid / 8, color="gray", ls="--", lw=1, label="high-frequency cutoff (G/8)")
    ax.set_yscale("log")
    ax.set_xlabel("radial frequency |k| (cycles per grid side)")
    ax.set_ylabel("mean power in the ring")
    ax.set_title(title or f"2-D spectrum of the {settings.get('signal', '')} field (G = {grid})")
    ax.legend(fontsize=8)


def spectra_figure(arrays: dict[str, np.ndarray], path: Path, step: int) -> None:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    plot_spectra(ax, arrays)
    ax.set_title(f"{ax.get_title()} — step {step}", fontsize=9)
    save(fig, path)


def series_figure(rows: list[dict], path: Path) -> None:
    """hf_power and max_grad per kind (mean ± s.e.m.) and test accuracy against training step."""
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    for name in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == name]
        steps = [r["step"] for r in rs]
        for ax, stat in zip(axes[:2], ("hf_power", "max_grad")):
            values = [r[f"{stat}_mean"] for r in rs]
            if np.all(np.isnan(values)):
                continue
            ax.errorbar(steps, values, yerr=[r[f"{stat}_sem"] for r in rs], color=COLORS.get(name), marker="o", ms=3,
                        capsize=2, label=name)
    axes[0].set_title("hf_power (high-frequency energy per line)")
    axes[1].set_title("max_grad (sharpest change per unit distance)")
    acc = sorted({(r["step"], r["test_acc"]) for r in rows if np.isfinite(r["test_acc"])})
    if acc:
        axes[2].plot(*zip(*acc), color="black", marker="o", ms=3)
    axes[2].set_title("test accuracy")
    for ax in axes:
        ax.set_xlabel("training step")
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def plane_figure(arrays: dict[str, np.ndarray], path: Path, step: int) -> None:
    """The predicted class over the first plane with its three images, and the radial profiles."""
    fig = Figure(figsize=(11, 4.5))
    ax_map, ax_radial = fig.subplots(1, 2)
    u0, u1, v0, v1 = arrays["extent"][0]
    im = ax_map.imshow(arrays["predicted"][0], origin="lower", extent=(u0, u1, v0, v1), cmap="tab10",
                       vmin=0, vmax=9, interpolation="nearest")
    coords, labels = arrays["coords"][0], arrays["labels"][0]
    ax_map.scatter(coords[:, 0], coords[:, 1], c="white", edgecolors="black", s=60, zorder=3)
    for (u, v), c in zip(coords, labels):
        ax_map.annotate(f"class {c}", (u, v), textcoords="offset points", xytext=(5, 5), color="white", fontsize=8)
    fig.colorbar(im, ax=ax_map, label="predicted class")
    ax_map.set_title(f"plane through images {arrays['triples'][0].tolist()} (step {step})", fontsize=9)
    ax_map.set_xlabel("u (standardized units)")
    ax_map.set_ylabel("v (standardized units)")
    _plot_radial(ax_radial, arrays, settings_of(arrays), "")
    fig.tight_layout()
    save(fig, path)


def diversity_figure(rows: list[dict], correlations: dict, path: Path) -> None:
    """Within-class hf_power and max_grad against class diversity (pixel, feature), last step."""
    fig = Figure(figsize=(10, 8))
    axes = fig.subplots(2, 2)
    for ax, (key, corr) in zip(axes.ravel(), correlations.items()):
        stat, kind = key.split("~")
        x = [r[f"diversity_{kind}"] for r in rows]
        y = [r[f"{stat}_mean"] for r in rows]
        ax.scatter(x, y, color="tab:blue")
        for r, xi, yi in zip(rows, x, y):
            ax.annotate(str(r["class"]), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xlabel(f"class diversity ({kind}: mean pairwise distance)")
        ax.set_ylabel(f"within-class {stat}")
        ax.set_title(f"Spearman ρ = {corr['rho']:.2f} [{corr['ci_low']:.2f}, {corr['ci_high']:.2f}] "
                     f"({corr['n_classes']} classes)", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def settings_of(arrays) -> dict:
    """The settings a results file was made with ({} if none)."""
    return json.loads(str(arrays["settings_json"])) if "settings_json" in arrays else {}
