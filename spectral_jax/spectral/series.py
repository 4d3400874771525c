"""`analyze_run` / `analyze_root`: an analysis at every chosen checkpoint of one run, or of every
run under a root, in as few programs as possible.

For each run and analysis setting (`settings.analysis_name`) it writes, per checkpoint step N,
WORKDIR/analysis/<name>/step_<N>.npz (`results` format), a summary.csv over all steps (per
step and kind of line), a settings.json (the settings and the work layout), and for pair lines
the class diversity (`diversity`). Runs of the same model and data under a root share one
compiled evaluator, and their checkpoints are stacked `layout.stack_size` at a time with
`jax.vmap`. Results are flushed per part of `analysis.flush_lines` lines
(WORKDIR/analysis/<name>/.parts/), so a killed analysis resumes where it stopped and ends
with the same files. Nothing that training owns is written: checkpoints are only read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from spectral_jax import config as config_lib
from spectral_jax import data as data_lib
from spectral_jax import io, models, parallel
from spectral_jax.errors import ConfigError, DamagedFile
from spectral_jax.spectral import checks
from spectral_jax.spectral import diversity as diversity_lib
from spectral_jax.spectral import layout as layout_lib
from spectral_jax.spectral import plane as plane_lib
from spectral_jax.spectral import results as results_lib
from spectral_jax.spectral import spectrum
from spectral_jax.spectral.evaluate import LineEvaluator, Prepared
from spectral_jax.spectral.inputs import LineInputs, line_inputs, standardized
from spectral_jax.spectral.settings import (DEFAULT_NAME, Layout, analysis_name, class_diversity_name,
                                            relevant_settings, same_settings, settings_json)
from spectral_jax.train import checkpoints

SUMMARY_COLUMNS = results_lib.SUMMARY_COLUMNS
# Config keys that fix the model's variables: a checkpoint restores only into the same ones.
MODEL_KEYS = ("model", "use_batchnorm", "wrn.depth", "wrn.widen_factor")
# Config keys that decide the data a program reads (runs under a root share a program when equal).
DATA_KEYS = ("dataset", "data_dir", "train_size", "image_size")


def analysis_dir(workdir: str | Path, name: str = DEFAULT_NAME) -> Path:
    return Path(workdir) / "analysis" / name


def analysis_names(workdir: str | Path) -> list[str]:
    """Every analysis folder of a run that has a summary.csv, the default first."""
    root = Path(workdir) / "analysis"
    names = sorted(p.parent.name for p in root.glob("*/summary.csv")) if root.is_dir() else []
    return sorted(names, key=lambda n: n != DEFAULT_NAME)


@dataclasses.dataclass
class Target:
    """One run's share of an analysis: its config, the folder, and the steps still to compute."""

    workdir: Path
    config: ml_collections.ConfigDict
    name: str
    todo: list[int]

    @property
    def out(self) -> Path:
        return analysis_dir(self.workdir, self.name)


def select_steps(workdir: str | Path, steps: str | Sequence[int] = "all") -> list[int]:
    """`all`, `last`, or step numbers ("N,M,..." or a sequence): each must have a complete checkpoint."""
    valid = checkpoints.valid_steps(workdir)
    if not valid:
        raise ConfigError(f"No checkpoints in {checkpoints.checkpoint_dir(workdir)}: "
                          f"train first (spectral-jax train --config=... --workdir {workdir}).")
    if steps in ("all", None, ""):
        return valid
    if steps == "last":
        return valid[-1:]
    try:
        wanted = [int(s) for s in (steps.split(",") if isinstance(steps, str) else steps)]
    except ValueError:
        raise ConfigError(f"--steps must be all, last or step numbers like 100,200; got {steps!r}.") from None
    missing = [s for s in wanted if s not in valid]
    if missing:
        raise ConfigError(f"No complete checkpoint for step {', '.join(map(str, missing))} in "
                          f"{checkpoints.checkpoint_dir(workdir)}; its steps are {', '.join(map(str, valid))}.")
    return sorted(set(wanted))


def check_same_model(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
    """A one-line error when `config` builds another model than the one the run's checkpoints hold."""
    run = config_lib.load_run_config(workdir)
    got = {k: _get(run, k) for k in MODEL_KEYS}
    asked = {k: _get(config, k) for k in MODEL_KEYS}
    if got != asked:
        diff = ", ".join(f"{k}={got[k]!r}" for k in MODEL_KEYS if got[k] != asked[k])
        ask = ", ".join(f"{k}={asked[k]!r}" for k in MODEL_KEYS if got[k] != asked[k])
        raise ConfigError(f"The checkpoints in {workdir} are of model {got['model']} ({diff}, from its config.json); "
                          f"the config asks for {asked['model']} ({ask}).")


def plan(workdir: str | Path, config: ml_collections.ConfigDict, steps: str | Sequence[int] = "all") -> Target:
    """Checks everything about one run before any compute; finds the steps still to do."""
    workdir = Path(workdir)
    config_lib.validate(config)
    check_same_model(workdir, config)
    read_metrics(workdir)  # a damaged log is named now, not after the compute
    chosen = select_steps(workdir, steps)
    name = analysis_name(config.analysis, config_lib.load_run_config(workdir).analysis)
    out = analysis_dir(workdir, name)
    record = out / "settings.json"
    if record.exists() and not same_settings(_read_record(record).get("settings"), config.analysis):
        raise ConfigError(f"{out} holds an analysis with other settings; give --config.analysis.name=NEW "
                          f"(or leave analysis.name empty for a folder named after the settings).")
    todo = [s for s in chosen if not same_settings(results_lib.stored_settings(out / f"step_{s}.npz"), config.analysis)]
    return Target(workdir, config, name, todo)


def analyze_run(workdir: str | Path, config: ml_collections.ConfigDict | None = None, *,
                quiet: bool = False, steps: str | Sequence[int] = "all") -> Path:
    """Analyses the chosen checkpoints of `workdir` not yet analysed with the same settings.

    `config` defaults to WORKDIR/config.json (pass one to change `analysis.*`). Returns the
    path of the analysis's summary.csv.
    """
    if config is None:
        config = config_lib.load_run_config(workdir)
    target = plan(workdir, config, steps)
    analyze_targets([target], quiet=quiet)
    return target.out / "summary.csv"


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding config.json) under `root`, sorted; a run's own folders are not searched."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory.")
    runs, stack = [], [root]
    while stack:
        d = stack.pop()
        if (d / "config.json").exists():
            runs.append(d)
            continue
        stack.extend(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(runs)


def analyze_root(root: str | Path, overrides: Sequence[tuple[str, str]] = (), *, quiet: bool = False,
                 steps: str | Sequence[int] = "all") -> list[Path]:
    """Every run under `root` (its own config.json plus `overrides`); runs of one model and data
    share a program. All runs are checked before any compute. Returns their summary.csv paths."""
    runs = find_runs(root)
    if not runs:
        raise ConfigError(f"No run directories (with config.json) under {root}.")
    targets = []
    for w in runs:
        config = config_lib.load_run_config(w)
        config_lib.apply_overrides(config, overrides)
        targets.append(plan(w, config, steps))
    groups: dict[str, list[Target]] = {}
    for t in targets:
        groups.setdefault(program_key(t.config), []).append(t)
    for group in groups.values():
        analyze_targets(group, quiet=quiet)
    return [t.out / "summary.csv" for t in targets]


def program_key(config: ml_collections.ConfigDict) -> str:
    """Runs whose configs agree on this share one compiled program and stacked checkpoints."""
    keys = MODEL_KEYS + DATA_KEYS + ("dtype",)
    a = config.analysis
    return json.dumps([[_get(config, k) for k in keys], relevant_settings(a),
                       [a.chunk_lines, a.forward_batch, a.stack, a.flush_lines]], sort_keys=True)


# --------------------------------------------------------------------------------------


def analyze_targets(targets: list[Target], *, quiet: bool = False) -> None:
    """Computes the missing steps of runs that share a program, then writes their summaries,
    holding each run's analysis lock (one analyzer per run; the trainer's files are only read)."""
    with contextlib.ExitStack() as locks:
        for t in targets:
            locks.enter_context(io.RunLock(t.workdir, "analyze", owns="analysis"))
        _analyze_targets(targets, quiet)


def _analyze_targets(targets: list[Target], quiet: bool) -> None:
    log = (lambda *a: None) if quiet else print
    config = targets[0].config
    a = config.analysis
    dataset = data_lib.open_dataset(config)
    work = [(t, s) for t in targets for s in t.todo]
    if work:
        inputs = config_inputs(config, dataset)
        model, abstract = models.create_model(config, dataset.image_shape, dataset.num_classes)
        checks.check_inputs(model.apply_fn, abstract, inputs, batch_check=False)  # traced only: eval mode, no compute
        mesh = parallel.make_mesh()
        record = _read_layout(targets)
        evaluator = evaluator_for(model.apply_fn, a, mesh, record)
        first = restore(work[0][0].workdir, work[0][1], abstract, mesh, work[0][0].config)
        # A resumed analysis keeps the recorded part size: its finished parts stay valid.
        part_lines = record.part_lines if record and record.part_lines else a.flush_lines
        prepared = evaluator.prepare(first, inputs.table, inputs.lines, inputs.mean, inputs.std,
                                     directions=inputs.directions, part_lines=part_lines)
        stack = record.stack if record else layout_lib.stack_size(first, lambda: evaluator.work_bytes(prepared), len(work), a.stack)
        layout = Layout(prepared.chunk_lines, evaluator.forward_batch, stack, prepared.part_lines)
        for t in targets:
            _write_settings(t, layout)
        log(f"analysis {targets[0].name}: {len(inputs.lines)} lines x {prepared.n_fft} points, "
            f"{len(work)} checkpoint(s) of {len(targets)} run(s), {stack} per program, "
            f"chunks of {prepared.chunk_lines} lines, forward batch {prepared.forward_batch}")
        for i in range(0, len(work), stack):
            group = work[i:i + stack]
            variables = [first if j == 0 and i == 0 else restore(t.workdir, s, abstract, mesh, t.config)
                         for j, (t, s) in enumerate(group)]
            _evaluate_group(evaluator, prepared, group, variables, stack, inputs, log)
    for t in targets:
        summary = write_summary(t.workdir, t.name)
        log(f"wrote {summary}")
        if a.lines == "pairs" and a.class_diversity and (t.todo or not _diversity_current(t, a.diversity_images)):
            write_class_diversity(t.workdir, t.config, t.name, dataset, log, fresh=t.todo)


def config_inputs(config: ml_collections.ConfigDict, dataset) -> LineInputs:
    """The lines of `config.analysis` on its split of `dataset`."""
    a = config.analysis
    if a.split not in dataset.splits:
        raise ConfigError(
            f"analysis.split={a.split!r}, but {config.dataset} has the splits {', '.join(dataset.splits)}"
            + (" (`val` exists only with --config.train_size)" if a.split == "val" else "") + ".")
    split = dataset.split(a.split)
    return line_inputs(split.labels, lambda idx: split.take(idx).images, a, dataset.mean, dataset.std)


def evaluator_for(apply_fn, a, mesh=None, record: Layout | None = None) -> LineEvaluator:
    """The evaluator of analysis settings `a` (`config.analysis` or a mapping with its keys;
    planes: rows of G points, logits kept); `record` fixes the layout of an earlier run."""
    plane = a["lines"] == "plane"
    return LineEvaluator(
        apply_fn, a["grid"] if plane else a["num_points"],
        chunk_lines=record.chunk_lines if record else a["chunk_lines"],
        sampling="count" if plane else a["sampling"], mesh=mesh,
        forward_batch=record.forward_batch if record else a["forward_batch"], seed=a["direction_seed"],
        step=a["step"], max_points=a["max_points"], signal=a["signal"], hf_cutoff=a["hf_cutoff"],
        hf_cutoff_unit="bins" if plane else a["hf_cutoff_unit"], estimator=a["estimator"],
        save_logits=a["save_logits"] or plane)  # planes: their own statistics, from the logits


def restore(workdir: Path, step: int, abstract, mesh, config) -> Any:
    """The variables at `step`, replicated on the mesh (checkpoints of any device count restore)."""
    sharding = parallel.replicated(mesh)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
    return checkpoints.restore_variables(workdir, step, target, model=config.model)  # another model: one line


def _evaluate_group(evaluator: LineEvaluator, prepared: Prepared, group, variables, stack: int,
                    inputs: LineInputs, log) -> None:
    stacked = stack > 1
    if stacked:
        variables = variables + [variables[-1]] * (stack - len(group))  # one program shape for every group
        variables = jax.tree.map(lambda *xs: jnp.stack(xs), *variables)
    else:
        variables = variables[0]
    p = dataclasses.replace(prepared, variables=variables, stacked=stacked)
    sj = [settings_json(t.config.analysis) for t, _ in group]
    done = {k for k in range(p.num_parts)
            if all(results_lib.stored_settings(_part_path(t, s, k, p.part_lines)) == j for (t, s), j in zip(group, sj))}
    for k, out in evaluator.parts(p, skip=done):
        for i, ((t, s), j) in enumerate(zip(group, sj)):
            part = {name: v[i] for name, v in out.items()} if stacked else out
            results_lib.save(_part_path(t, s, k, p.part_lines), {**part, "settings_json": np.asarray(j)})
    for (t, s), j in zip(group, sj):
        parts = [results_lib.load(_part_path(t, s, k, p.part_lines)) for k in range(p.num_parts)]
        stats = {name: np.concatenate([q[name] for q in parts]) for name in parts[0] if name != "settings_json"}
        path = t.out / f"step_{s}.npz"
        results_lib.save(path, step_results(stats, inputs, t.config.analysis, p.n_fft, s))
        for part_file in (t.out / ".parts").glob(f"step_{s}.*"):  # of any part size
            part_file.unlink(missing_ok=True)
        log(f"analyzed {t.workdir} step {s}: {len(inputs.lines)} lines -> {path}")


def step_results(stats: dict[str, np.ndarray], inputs: LineInputs, a, n_fft: int, step: int = -1) -> dict:
    """The arrays of one results file from the evaluator's per-line output."""
    settings = relevant_settings(a)
    if inputs.planes is not None:
        planes = plane_lib.plane_results(stats["logits"], inputs.planes, a["signal"])
        if not a["save_logits"]:
            planes.pop("logits")
        g = planes["radial"].shape[-1]
        extra = {k: inputs.planes[k] for k in ("coords", "extent", "side")}
        return results_lib.with_metadata(
            {**planes, **extra, "triples": inputs.planes["triples"]},
            kind=np.full(len(inputs.planes["triples"]), plane_lib.PLANE), labels=inputs.planes["labels"],
            pairs=inputs.planes["triples"][:, :2], settings=settings, step=step,
            frequency=np.arange(g, dtype=np.float32))
    return results_lib.with_metadata(
        stats, kind=inputs.lines.kind, labels=inputs.lines.labels, pairs=inputs.pairs, settings=settings, step=step,
        frequency=np.asarray(spectrum.frequencies(spectrum.fft_length(n_fft, a["sampling"], a["estimator"]),
                                                  a["sampling"], a["step"])))


def _part_path(t: Target, step: int, k: int, part_lines: int) -> Path:
    """Part k of a step's results, cut in parts of `part_lines` lines (in the name: runs analysed
    together by --root may hold parts cut at another size, which are then computed again)."""
    return t.out / ".parts" / f"step_{step}.lines_{part_lines}.part_{k}.npz"


def _read_layout(targets: list[Target]) -> Layout | None:
    """The layout an earlier (interrupted) run of the same settings used, so the numbers match."""
    for t in targets:
        record = t.out / "settings.json"
        if record.exists() and "layout" in _read_record(record):
            return Layout(**_read_record(record)["layout"])
    return None


def _read_record(record: Path) -> dict:
    return io.read_json(record, way_out="Delete it and rerun spectral-jax analyze: it is written again.")


def _write_settings(t: Target, layout: Layout) -> None:
    record = t.out / "settings.json"
    if not record.exists():
        io.write_json(record, {"name": t.name, "settings": relevant_settings(t.config.analysis),
                               "layout": layout.to_dict()})


def _get(config: ml_collections.ConfigDict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node.get(part) if node is not None else None
    return node


# --------------------------------------------------------------------------------------
# Reading results back


def analysed_steps(workdir: str | Path, name: str = DEFAULT_NAME) -> list[int]:
    """Steps with a step_<N>.npz, ascending."""
    names = analysis_dir(workdir, name).glob("step_*.npz")
    return sorted(int(p.stem.split("_")[1]) for p in names if p.stem.split("_")[1].isdigit())


def load_step(workdir: str | Path, step: int, name: str = DEFAULT_NAME) -> dict[str, np.ndarray]:
    return results_lib.load(analysis_dir(workdir, name) / f"step_{step}.npz")


def write_summary(workdir: str | Path, name: str = DEFAULT_NAME) -> Path:
    """summary.csv over every analysed step, joined with test accuracy from metrics.jsonl."""
    acc = {r.get("step"): r.get("test_acc") for r in read_metrics(workdir)}
    rows = []
    for step in analysed_steps(workdir, name):
        f = results_lib.load(analysis_dir(workdir, name) / f"step_{step}.npz", [*spectrum.STATISTICS, "kind"],
                             required=("kind",))
        stats = {k: f[k] for k in spectrum.STATISTICS if k in f}
        for row in results_lib.summarize(stats, f["kind"]):
            rows.append({**row, "step": step, "test_acc": acc.get(step, float("nan"))})
    out = analysis_dir(workdir, name) / "summary.csv"
    io.write_text(out, results_lib.csv_text(rows))
    return out


def read_metrics(workdir: str | Path) -> list[dict]:
    """The run's metrics.jsonl records (a damaged line is an error naming it and the way out)."""
    return io.read_jsonl(Path(workdir) / "metrics.jsonl", way_out=f"Rerun spectral-jax train --workdir {workdir}: "
                                                                  f"it rebuilds metrics.jsonl from its checkpoints.")


def read_summary(workdir: str | Path, name: str = DEFAULT_NAME) -> list[dict]:
    """summary.csv as a list of dicts with numeric values."""
    path = analysis_dir(workdir, name) / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `spectral-jax analyze --workdir {workdir}` first.")
    return results_lib.read_csv(path)


# --------------------------------------------------------------------------------------
# Class diversity (docs/methods.md §2.5)


def write_class_diversity(workdir: Path, config, name: str, dataset, log=print, fresh: Sequence[int] = ()) -> Path:
    """class_diversity.csv (per step and class) and class_diversity.json (Spearman correlations
    with bootstrap intervals) from a pairs analysis and its split's images. Steps already in the
    files (with the same diversity_images) are kept; the others, and the `fresh` ones (analysed
    again just now), are computed."""
    a = config.analysis
    out = Path(workdir) / "analysis" / class_diversity_name(name)
    steps = analysed_steps(workdir, name)
    rows, correlations = _previous_diversity(out, a.diversity_images, set(steps) - set(fresh))
    todo = [s for s in steps if str(s) not in correlations]
    if todo:
        split = dataset.split(a.split)
        by_class = {}
        for c in np.unique(split.labels):
            if a.classes and int(c) not in a.classes:
                continue
            by_class[int(c)] = np.flatnonzero(split.labels == c)[: a.diversity_images or None]
        used = np.concatenate(list(by_class.values()))
        images = standardized(split.take(used).images, dataset.mean, dataset.std)
        offsets = np.cumsum([0] + [len(v) for v in by_class.values()])
        images_by_class = {c: images[offsets[i]:offsets[i + 1]] for i, c in enumerate(by_class)}
        model, abstract = models.create_model(config, dataset.image_shape, dataset.num_classes)
        mesh = parallel.make_mesh()
        features_fn = jax.jit(model.features_fn)
    for step in todo:
        variables = restore(workdir, step, abstract, mesh, config)
        diversity = diversity_lib.class_diversity(images_by_class, lambda x: features_fn(variables, x))
        step_rows, corr = diversity_lib.diversity_table(step, diversity_lib.class_frequency(load_step(workdir, step, name)),
                                                        diversity)
        rows += step_rows
        correlations[str(step)] = corr
    rows.sort(key=lambda r: (r["step"], r["class"]))
    correlations = {k: correlations[k] for k in sorted(correlations, key=int)}
    lines = [",".join(diversity_lib.COLUMNS)] + [",".join(repr(r[c]) if isinstance(r[c], float) else str(r[c])
                                                          for c in diversity_lib.COLUMNS) for r in rows]
    io.write_text(out / "class_diversity.csv", "\n".join(lines) + "\n")
    io.write_json(out / "class_diversity.json", {
        "analysis": name, "statistic": "spearman", "bootstrap": diversity_lib.BOOTSTRAP, "level": diversity_lib.LEVEL,
        "diversity_images": a.diversity_images, "correlations": correlations})
    log(f"wrote {out / 'class_diversity.csv'}")
    return out / "class_diversity.csv"


def _diversity_current(t: Target, diversity_images: int) -> bool:
    """The class-diversity files hold every analysed step, readable (a damaged one is rewritten)."""
    steps = analysed_steps(t.workdir, t.name)
    _, correlations = _previous_diversity(t.workdir / "analysis" / class_diversity_name(t.name), diversity_images,
                                          set(steps))
    return set(correlations) == {str(s) for s in steps}


def _previous_diversity(out: Path, diversity_images: int, keep: set[int]) -> tuple[list[dict], dict]:
    """(rows, correlations) of the steps in `keep` that the class-diversity files already hold,
    when they were computed with the same `diversity_images`; nothing from damaged files (they
    are written again)."""
    try:
        record = io.read_json(out / "class_diversity.json")
        rows = io.read_csv(out / "class_diversity.csv", required=diversity_lib.COLUMNS)
        if record.get("diversity_images") != diversity_images or not isinstance(record.get("correlations"), dict):
            return [], {}
        correlations = {k: v for k, v in record["correlations"].items() if k.isdigit() and int(k) in keep}
        integer = ("step", "class", "n_lines", "n_images")
        rows = [{c: int(r[c]) if c in integer else r[c] for c in diversity_lib.COLUMNS}
                for r in rows if str(int(r["step"])) in correlations]
    except (FileNotFoundError, DamagedFile, ValueError, OverflowError):  # int(nan), int(inf): damaged too
        return [], {}
    return rows, correlations
