"""`write_report(workdir)`: figures and summary.json for every analysis present in a run directory.

Per analysis folder analysis/<name>/ (the default `interpolation` keeps the unsuffixed names):
- report/spectra[-<name>].png: mean spectrum per kind of line at the last analysed checkpoint,
  with the high-frequency cutoff (planes: the radial profile of the 2-D spectrum);
- report/hf_vs_step[-<name>].png: hf_power, max_grad (per kind, mean ± s.e.m.) and test
  accuracy against training step;
- report/plane[-<name>].png (planes): the predicted class over the first plane and the profiles;
- report/class_diversity[-<name>].png: within-class statistics against class diversity.
report/summary.json: the last checkpoint's statistics per kind of every analysis, the
settings, and the run's training summary (top-level `last`, `last_step`, ... describe the
default analysis when present).
"""

from __future__ import annotations

from pathlib import Path

from spectral_jax import io
from spectral_jax.errors import DamagedFile
from spectral_jax.report import figures
from spectral_jax.spectral import results, series
from spectral_jax.spectral.settings import DEFAULT_NAME, class_diversity_name


def report_dir(workdir: str | Path) -> Path:
    return Path(workdir) / "report"


def write_report(workdir: str | Path, *, quiet: bool = False) -> dict:
    """Writes the report files; returns summary.json's dict."""
    workdir = Path(workdir)
    names = [n for n in series.analysis_names(workdir) if series.analysed_steps(workdir, n)]
    if not names:
        raise FileNotFoundError(f"No analysis in {workdir / 'analysis'}: "
                                f"run `spectral-jax analyze --workdir {workdir}` first.")
    rebuild = f"Rerun spectral-jax train --workdir {workdir}: it rebuilds summary.json from metrics.jsonl."
    run_summary = io.read_json(workdir / "summary.json", rebuild) if (workdir / "summary.json").exists() else {}
    out = report_dir(workdir)
    with io.RunLock(workdir, "report", owns="report"):  # one report writer; the run's own files are only read
        out.mkdir(parents=True, exist_ok=True)
        analyses, written = {}, []
        for name in names:
            analyses[name] = _report_analysis(workdir, name, out, written)
        summary = {"workdir": str(workdir), "analyses": analyses, "training": run_summary, "figures": written}
        if DEFAULT_NAME in analyses:
            default = analyses[DEFAULT_NAME]
            summary.update({k: default[k] for k in ("last_step", "analysed_steps", "num_points", "last")})
            summary["mode"] = default["settings"].get("sampling", "count")
        io.write_json(out / "summary.json", summary)
    if not quiet:
        print(f"wrote {', '.join(str(out / f) for f in written)}, {out / 'summary.json'}")
    return summary


def _report_analysis(workdir: Path, name: str, out: Path, written: list[str]) -> dict:
    suffix = "" if name == DEFAULT_NAME else f"-{name}"
    steps = series.analysed_steps(workdir, name)
    rows = series.read_summary(workdir, name)
    last = series.load_step(workdir, steps[-1], name)
    figures.spectra_figure(last, out / f"spectra{suffix}.png", steps[-1])
    figures.series_figure(rows, out / f"hf_vs_step{suffix}.png")
    written += [f"spectra{suffix}.png", f"hf_vs_step{suffix}.png"]
    if "radial" in last:
        figures.plane_figure(last, out / f"plane{suffix}.png", steps[-1])
        written.append(f"plane{suffix}.png")
    diversity = workdir / "analysis" / class_diversity_name(name)
    if (diversity / "class_diversity.json").exists():
        way_out = f"Rerun spectral-jax analyze --workdir {workdir}: it writes it again."
        record = io.read_json(diversity / "class_diversity.json", way_out)
        correlations = record.get("correlations")
        if not isinstance(correlations, dict) or not correlations or not all(k.isdigit() for k in correlations):
            raise DamagedFile(diversity / "class_diversity.json", "it has no correlations by step", way_out)
        step_key = max(record["correlations"], key=int)
        rows_at = [r for r in results.read_csv(diversity / "class_diversity.csv") if r["step"] == int(step_key)]
        figures.diversity_figure(rows_at, record["correlations"][step_key], out / f"class_diversity{suffix}.png")
        written.append(f"class_diversity{suffix}.png")
    spectra = last["radial"] if "radial" in last else last["power"]
    return {
        "last_step": steps[-1],
        "analysed_steps": steps,
        "num_points": 2 * (spectra.shape[1] - 1),  # points per line (padded, in distance sampling); planes: G
        "settings": figures.settings_of(last),
        "last": {r["kind"]: {k: v for k, v in r.items() if k not in ("kind", "step")}
                 for r in rows if r["step"] == steps[-1]},
    }
