"""`write_report(workdir)`: figures and summary.json from a run's analysis files.

- report/spectra.png: mean one-sided power spectrum of the (detrended) line signal at the last
  analysed checkpoint, within- vs between-class, with the high-frequency cutoff marked;
- report/hf_vs_step.png: hf_power, max_grad (within and between, mean +- s.e.m.) and test
  accuracy against training step;
- report/summary.json: the last checkpoint's statistics per kind of line, the run's training
  summary and the settings that produced them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spectral_jax import io  # noqa: E402
from spectral_jax.spectral import series, spectrum  # noqa: E402
from spectral_jax.spectral.lines import BETWEEN, WITHIN  # noqa: E402

COLORS = {"within": "tab:blue", "between": "tab:red"}


def report_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "report"


def write_report(workdir: str | Path, *, quiet: bool = False) -> dict:
    """Writes the report files; returns summary.json's dict."""
    workdir = Path(workdir)
    rows = series.read_summary(workdir)
    steps = series.analysed_steps(workdir)
    if not steps or not rows:
        raise FileNotFoundError(f"No analysis in {series.analysis_dir(workdir)}: "
                                f"run `spectral-jax analyze --workdir {workdir}` first.")
    last = series.load_step(workdir, steps[-1])
    out = report_dir(workdir)
    out.mkdir(parents=True, exist_ok=True)
    _plot_spectra(last, out / "spectra.png", steps[-1])
    _plot_series(rows, out / "hf_vs_step.png")

    run_summary = io.read_json(workdir / "summary.json") if (workdir / "summary.json").exists() else {}
    at_last = {r["kind"]: {k: v for k, v in r.items() if k not in ("kind", "step")}
               for r in rows if r["step"] == steps[-1]}
    summary = {
        "workdir": str(workdir),
        "last_step": steps[-1],
        "analysed_steps": steps,
        "num_points": int(last["logits"].shape[1]),
        "mode": str(last.get("setting_mode", "detrended")),
        "last": at_last,
        "training": run_summary,
        "figures": ["spectra.png", "hf_vs_step.png"],
    }
    io.write_json(out / "summary.json", summary)
    if not quiet:
        print(f"wrote {out / 'spectra.png'}, {out / 'hf_vs_step.png'}, {out / 'summary.json'}")
    return summary


def _plot_spectra(stats: dict, path: Path, step: int) -> None:
    power, kind = stats["power"], stats["kind"]
    m = stats["logits"].shape[1]
    bins = np.arange(power.shape[1])
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, name in ((WITHIN, "within"), (BETWEEN, "between")):
        sel = kind == k
        if not sel.any():
            continue
        mean = power[sel].mean(0)
        sem = power[sel].std(0, ddof=1) / np.sqrt(sel.sum()) if sel.sum() > 1 else np.zeros_like(mean)
        ax.plot(bins[1:], mean[1:], color=COLORS[name], label=f"{name}-class ({sel.sum()} lines)")
        ax.fill_between(bins[1:], np.maximum(mean - sem, 1e-30)[1:], (mean + sem)[1:], color=COLORS[name], alpha=0.2)
    ax.axvline(spectrum.hf_cutoff_bin(m), color="gray", ls="--", lw=1, label="high-frequency cutoff (M/8)")
    ax.set_yscale("log")
    ax.set_xlabel("frequency (cycles per line)")
    ax.set_ylabel("mean power |rfft(d)|²")
    ax.set_title(f"Interpolation spectrum at step {step} (M = {m})")
    ax.legend(fontsize=8)
    _save(fig, path)


def _plot_series(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name in ("within", "between"):
        rs = [r for r in rows if r["kind"] == name]
        if not rs:
            continue
        steps = [r["step"] for r in rs]
        for ax, stat in zip(axes[:2], ("hf_power", "max_grad")):
            ax.errorbar(steps, [r[f"{stat}_mean"] for r in rs], yerr=[r[f"{stat}_sem"] for r in rs],
                        color=COLORS[name], marker="o", ms=3, capsize=2, label=f"{name}-class")
    axes[0].set_title("hf_power (high-frequency energy per line)")
    axes[1].set_title("max_grad (sharpest change per unit distance)")
    acc = sorted({(r["step"], r["test_acc"]) for r in rows if np.isfinite(r["test_acc"])})
    if acc:
        axes[2].plot(*zip(*acc), color="black", marker="o", ms=3)
    axes[2].set_title("test accuracy")
    for ax in axes:
        ax.set_xlabel("training step")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
