"""`write_sweep_report(root)`: results.csv and the experiment's figure for a sweep root.

The figure is chosen by the experiment config's FIGURE (recorded in sweep.json); runs that
differ only in `seed` are averaged, drawn as mean +- s.e.m.:

- noise_fitting (E1): minimum noise fitting (test, and training set) against the noise
  frequency per model and noise type, with the oracle (dashed) and the uniform control
  (dotted band); the training-set fit fraction against frequency (docs/methods.md §10);
- training_time (E2): within/between hf_power and max_grad, and test accuracy, against epoch;
- intervention (E3-E6, E9): within/between hf_power and max_grad, and test accuracy, per arm;
- image_frequency (E7): minimum noise fitting per noise direction, with and without
  image-frequency augmentation, beside the spread of the data along each direction;
- class_diversity (E8): within-class hf_power per class against the class's diversity, with
  Spearman's rho per model.

Writes ROOT/results.csv, ROOT/report/<figure>.png and ROOT/report/summary.json.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from spectral_jax import io
from spectral_jax.data.noise import fit_fraction
from spectral_jax.report import aggregate, figures
from spectral_jax.report.figures import COLORS
from spectral_jax.report.run_report import report_dir
from spectral_jax.spectral import series

SEED = "seed"
KINDS = ("within", "between")


def write_sweep_report(root: str | Path, *, quiet: bool = False) -> dict:
    """Writes results.csv, the figure and report/summary.json; returns the summary's dict."""
    root = Path(root)
    sweep, rows = aggregate.gather(root)
    csv_path = aggregate.write_results_csv(root, sweep, rows)
    out = report_dir(root)
    out.mkdir(parents=True, exist_ok=True)
    draw = FIGURES[sweep["figure"]]
    notes: list[str] = []
    figures = draw(root, sweep, [r for r in rows if r["state"] == "done"], out, notes)
    done = sum(r["state"] == "done" for r in rows)
    if done < len(rows):
        notes.append(f"{len(rows) - done} of {len(rows)} runs are not finished; the figure shows the {done} that are.")
    summary = {"root": str(root), "config": sweep["config"], "title": sweep["title"], "runs": len(rows),
               "done": done, "results": csv_path.name, "figures": figures, "notes": notes}
    io.write_json(out / "summary.json", summary)
    if not quiet:
        print(f"wrote {csv_path} ({len(rows)} runs, {done} done)" +
              "".join(f", {out / f}" for f in figures) + "".join(f"\n  note: {n}" for n in notes))
    return summary


# --------------------------------------------------------------------------------------
# E1: noise fitting against frequency


def noise_fitting_figure(root: Path, sweep: dict, rows: list[dict], out: Path, notes: list[str]) -> list[str]:
    waves = [r for r in rows if r.get("noise.type") != "uniform"]
    controls = [r for r in rows if r.get("noise.type") == "uniform"]
    if not waves:
        notes.append("no finished noise run with a frequency: no noise-fitting figure.")
        return []
    unit = waves[0].get("noise.frequency_unit")
    series_keys = [k for k in ("model", "noise.type", "noise.amplitude") if k in sweep["swept_keys"]] or ["noise.type"]
    fig = Figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    panels = (("min_noise_fitting_after_burn_in", "oracle_noise_fitting", "test set: min noise fitting"),
              ("min_train_noise_fitting", "train_oracle_noise_fitting", "training set: min noise fitting"))
    for i, (name, group) in enumerate(_group(waves, series_keys).items()):
        color = f"C{i % 10}"
        model_controls = [c for c in controls if c.get("model") == group[0].get("model")]
        for ax, (column, oracle, _) in zip(axes, panels):
            _mean_sem_line(ax, group, "noise.frequency", column, color=color, label=name or "noise", marker="o")
            _mean_sem_line(ax, group, "noise.frequency", oracle, color=color, ls="--", lw=1, label=None)
        fractions = [dict(r, fit_fraction=_fit_fraction(r, model_controls)) for r in group]
        _mean_sem_line(axes[2], fractions, "noise.frequency", "fit_fraction", color=color, label=name, marker="o")
    for j, (model, group) in enumerate(_group(controls, ["model"]).items()):
        for ax, (column, _, _) in zip(axes, panels):
            m, s, _ = aggregate.mean_sem(c.get(column) for c in group)
            ax.axhline(m, color="gray", ls=(0, (1, 1 + 2 * j)), lw=1.2, label=f"uniform control, {model}")
            ax.axhspan(m - s, m + s, color="gray", alpha=0.1)
    for ax, (_, _, title) in zip(axes, panels):
        ax.set_title(f"{title}\n(dashed: oracle; gray dotted: uniform control)", fontsize=9)
        ax.set_ylabel("noise fitting (clean - noisy loss)")
    axes[2].set_title("training set: fit fraction (NF - NF uniform) / (oracle - oracle uniform)", fontsize=9)
    axes[2].axhline(0, color="gray", lw=0.5)
    frequencies = sorted({float(r["noise.frequency"]) for r in waves})
    for ax in axes:
        if frequencies[0] > 0:
            ax.set_xscale("log")
            ax.set_xticks(frequencies, [f"{f:g}" for f in frequencies])
            ax.minorticks_off()
        ax.set_xlabel(f"noise frequency ({'cycles per std of g(x)' if unit == 'data_std' else 'cycles per unit'})")
        ax.legend(fontsize=7)
    return [_save(fig, out / "noise_fitting_vs_frequency.png", sweep["title"])]


def _fit_fraction(row: dict, controls: list[dict]) -> float | None:
    """The training-set fit fraction of `row` against the uniform control of its seed (else all)."""
    same_seed = [c for c in controls if c.get(SEED) == row.get(SEED)] or controls
    if not same_seed:
        return None
    nf_u, _, _ = aggregate.mean_sem(c.get("min_train_noise_fitting") for c in same_seed)
    or_u, _, _ = aggregate.mean_sem(c.get("train_oracle_uniform_noise_fitting") for c in same_seed)
    nf, oracle = row.get("min_train_noise_fitting"), row.get("train_oracle_noise_fitting")
    if nf is None or oracle is None or oracle == or_u:
        return None
    return fit_fraction(nf, nf_u, oracle, or_u)


# --------------------------------------------------------------------------------------
# E2: statistics against training time


def training_time_figure(root: Path, sweep: dict, rows: list[dict], out: Path, notes: list[str]) -> list[str]:
    fig = Figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    drawn = False
    for i, (label, group) in enumerate(_group(rows, ["label"]).items()):
        per_run = [_epoch_series(root / r["run"]) for r in group]
        per_run = [p for p in per_run if p]
        if not per_run:
            continue
        drawn = True
        epochs = sorted(set.intersection(*(set(p) for p in per_run)))
        for ax, stat in zip(axes[:2], ("hf_power", "max_grad")):
            for kind, ls in zip(KINDS, ("--", "-")):
                points = [aggregate.mean_sem(p[e].get(f"{stat}_{kind}") for p in per_run) for e in epochs]
                ax.errorbar(epochs, [m for m, _, _ in points], yerr=[s for _, s, _ in points], color=f"C{i % 10}",
                            ls=ls, marker="o", ms=3, capsize=2, label=f"{label}, {kind}-class")
        acc = [aggregate.mean_sem(p[e].get("test_acc") for p in per_run) for e in epochs]
        axes[2].errorbar(epochs, [m for m, _, _ in acc], yerr=[s for _, s, _ in acc], color=f"C{i % 10}",
                         marker="o", ms=3, capsize=2, label=label)
    if not drawn:
        notes.append("no finished run has an interpolation analysis: no training-time figure.")
        return []
    axes[0].set_title("hf_power (dashed: within-class, solid: between-class)", fontsize=9)
    axes[1].set_title("max_grad (dashed: within-class, solid: between-class)", fontsize=9)
    axes[2].set_title("test accuracy", fontsize=9)
    axes[0].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    return [_save(fig, out / "hf_vs_epoch.png", sweep["title"])]


def _epoch_series(workdir: Path) -> dict[int, dict]:
    """epoch -> {hf_power_within, ..., test_acc} from a run's interpolation summary.csv."""
    try:
        rows = series.read_summary(workdir)
    except FileNotFoundError:
        return {}
    epoch_of = {r["step"]: r["epoch"] for r in io.read_jsonl(workdir / "metrics.jsonl")}
    out: dict[int, dict] = {}
    for r in rows:
        epoch = epoch_of.get(int(r["step"]))
        if epoch is None:
            continue
        point = out.setdefault(epoch, {"test_acc": r["test_acc"]})
        for stat in ("hf_power", "max_grad"):
            point[f"{stat}_{r['kind']}"] = r[f"{stat}_mean"]
    return out


# --------------------------------------------------------------------------------------
# E3-E6, E9: one point per intervention arm


def intervention_figure(root: Path, sweep: dict, rows: list[dict], out: Path, notes: list[str]) -> list[str]:
    arms = _group(rows, ["label"])
    if not arms:
        notes.append("no finished run: no figure.")
        return []
    labels = list(arms)
    x = list(range(len(labels)))
    fig = Figure(figsize=(min(20, max(12, 2.6 * len(labels))), 4.8))
    axes = fig.subplots(1, 3)
    for ax, stat in zip(axes[:2], ("hf_power", "max_grad")):
        for j, kind in enumerate(KINDS):
            points = [aggregate.mean_sem(r.get(f"{stat}_{kind}") for r in arms[label]) for label in labels]
            ax.errorbar([i + (j - 0.5) * 0.15 for i in x], [m for m, _, _ in points], yerr=[s for _, s, _ in points],
                        color=COLORS[kind], marker="o", ls="none", capsize=3, label=f"{kind}-class")
        ax.set_title(f"{stat} at the last checkpoint", fontsize=9)
    acc = [aggregate.mean_sem(r.get("final_test_acc") for r in arms[label]) for label in labels]
    axes[2].errorbar(x, [m for m, _, _ in acc], yerr=[s for _, s, _ in acc], color="black", marker="o", ls="none",
                     capsize=3)
    axes[2].set_title("final test accuracy", fontsize=9)
    axes[0].set_yscale("log")
    for ax in axes:
        ax.set_xticks(x, [_wrap(label) for label in labels], rotation=30, ha="right", fontsize=7)
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    seeds = {len(arms[label]) for label in labels}
    fig.text(0.01, 0.01, f"mean +- s.e.m. over {'/'.join(map(str, sorted(seeds)))} seed(s) per arm", fontsize=7)
    return [_save(fig, out / "intervention.png", sweep["title"])]


# --------------------------------------------------------------------------------------
# E7: noise fitting per image-frequency direction


def direction_name(row: dict) -> str:
    """`fourier m=2`, `random`, `f`, `1/f`, `radial`: the noise direction of a results row."""
    kind = row.get("noise.type")
    if kind == "fourier":
        return f"fourier m={int(float(row.get('noise.spatial_frequency') or 0) / math.sqrt(2.0))}"
    return str(kind)


def image_frequency_figure(root: Path, sweep: dict, rows: list[dict], out: Path, notes: list[str]) -> list[str]:
    rows = [dict(r, direction=direction_name(r)) for r in rows if r.get("noise.type") not in (None, "none")]
    if not rows:
        notes.append("no finished noise run: no image-frequency figure.")
        return []
    directions = list(dict.fromkeys(r["direction"] for r in rows))
    x = list(range(len(directions)))
    arm_key = "augment.image_freq.probability"
    fig = Figure(figsize=(16, 4.8))
    axes = fig.subplots(1, 3)
    for j, (arm, group) in enumerate(_group(rows, [arm_key] if arm_key in sweep["swept_keys"] else []).items()):
        name = "no image-frequency augmentation" if float(group[0].get(arm_key) or 0) == 0 else \
            f"image-frequency augmentation p={group[0].get(arm_key):g}"
        by_dir = _group(group, ["direction"])
        for ax, column in zip(axes[:2], ("min_train_noise_fitting", "min_noise_fitting_after_burn_in")):
            pts = [(i, aggregate.mean_sem(r.get(column) for r in by_dir[d])) for i, d in enumerate(directions)
                   if d in by_dir]
            ax.errorbar([i + 0.15 * j for i, _ in pts], [p[0] for _, p in pts], yerr=[p[1] for _, p in pts],
                        marker="o", ls="none", capsize=3, color=f"C{j}", label=name)
        spread = [(i, aggregate.mean_sem(r.get("noise_feature_std") for r in by_dir[d])) for i, d in
                  enumerate(directions) if d in by_dir]
        axes[2].bar([i + 0.3 * j for i, _ in spread], [p[0] for _, p in spread], width=0.3, color=f"C{j}", label=name)
    axes[0].set_title("training set: min noise fitting", fontsize=9)
    axes[1].set_title("test set: min noise fitting", fontsize=9)
    axes[2].set_title("data spread along the direction: std of g(x) over the training set", fontsize=9)
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xticks(x, directions, rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    return [_save(fig, out / "noise_fitting_vs_direction.png", sweep["title"])]


# --------------------------------------------------------------------------------------
# E8: within-class frequency against class diversity


def class_diversity_figure(root: Path, sweep: dict, rows: list[dict], out: Path, notes: list[str]) -> list[str]:
    tables = {r["run"]: aggregate.read_class_diversity(root / r["run"]) for r in rows}
    have = [r for r in rows if tables[r["run"]]]
    if not have:
        notes.append(f"no run has {aggregate.CLASS_DIVERSITY_CSV}: the class-diversity analysis has not been run, "
                     f"so there is no class-diversity figure.")
        return []
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    for i, (label, group) in enumerate(_group(have, ["label"]).items()):
        for ax, kind in zip(axes, ("pixel", "feature")):
            for k, r in enumerate(group):
                points = aggregate.last_step_rows(tables[r["run"]])
                m, s, n = aggregate.mean_sem(g.get(f"diversity_spearman_{kind}") for g in group)
                ax.scatter([p[f"diversity_{kind}"] for p in points], [p["hf_power_mean"] for p in points],
                           color=f"C{i % 10}", s=12, label=f"{label}: rho = {m:.2f} +- {s:.2f} ({n} runs)" if k == 0
                           else None)
            ax.set_xlabel(f"class diversity ({kind}: mean pairwise distance)")
    axes[0].set_ylabel("within-class hf_power (per class)")
    for ax in axes:
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    return [_save(fig, out / "hf_vs_class_diversity.png", sweep["title"])]


FIGURES = {"noise_fitting": noise_fitting_figure, "training_time": training_time_figure,
           "intervention": intervention_figure, "image_frequency": image_frequency_figure,
           "class_diversity": class_diversity_figure}


# --------------------------------------------------------------------------------------


def _group(rows: list[dict], keys: list[str]) -> dict[str, list[dict]]:
    """Rows by their values of `keys` (seeds fall together), in first-seen order; names like 'cnn, radial'."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(", ".join(str(r.get(k)) for k in keys), []).append(r)
    return out


def _mean_sem_line(ax, rows: list[dict], x_key: str, y_key: str, *, label, **style) -> None:
    """y mean +- s.e.m. over the rows at each x (x values without a y are left out)."""
    xs = sorted({float(r[x_key]) for r in rows if r.get(x_key) is not None})
    points = [(x, aggregate.mean_sem(r.get(y_key) for r in rows if r.get(x_key) is not None and float(r[x_key]) == x))
              for x in xs]
    points = [(x, m, s) for x, (m, s, n) in points if n]
    if points:
        ax.errorbar(*zip(*[(x, m) for x, m, _ in points]), yerr=[s for _, _, s in points], capsize=2, label=label,
                    **style)


def _wrap(text: str, width: int = 28) -> str:
    return "\n".join(text[i:i + width] for i in range(0, len(text), width))


def _save(fig: Figure, path: Path, title: str) -> str:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    figures.save(fig, path)
    return path.name
