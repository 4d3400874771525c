"""`spectral-jax report --root`: results.csv (documented columns, known values) and each
experiment's figure, from hand-made run directories (no training) and from a real sweep."""

import csv

import pytest

from spectral_jax import cli, io
from spectral_jax import config as config_lib
from spectral_jax.errors import DamagedFile
from spectral_jax.report import aggregate, write_sweep_report
from spectral_jax.spectral import series

PNG = b"\x89PNG"


def make_run(root, name, overrides: dict, *, final_test_acc=0.9, train_nf=(), lines=(), diversity=()):
    """A finished run directory: config.json, summary.json, metrics.jsonl, the interpolation
    summary.csv (`lines`: (step, kind, hf_power, max_grad)) and class_diversity.csv rows."""
    workdir = root / name
    config = config_lib.base_config()
    config_lib.apply_overrides(config, [(k, repr(v)) for k, v in overrides.items()])
    config_lib.write_config(config, workdir)
    steps = sorted({line[0] for line in lines}) or [10]
    records = [{"epoch": i + 1, "step": s, "test_acc": 0.5 + 0.1 * i} for i, s in enumerate(steps)]
    for record, nf in zip(records, train_nf):
        record.update(noise_fitting=nf, train_noise_fitting=nf)
    io.write_jsonl(workdir / "metrics.jsonl", records)
    summary = {"final_test_acc": final_test_acc, "last_step": steps[-1], "total_steps": steps[-1],
               "stopped_early": "", "epochs_done": len(steps)}
    if train_nf:
        summary.update(min_noise_fitting_after_burn_in=min(train_nf), oracle_noise_fitting=-0.1,
                       train_oracle_noise_fitting=-0.1, train_oracle_uniform_noise_fitting=-0.8)
    io.write_json(workdir / "summary.json", summary)
    io.write_json(workdir / "report" / "summary.json", {})
    if lines:
        rows = [",".join(series.SUMMARY_COLUMNS[:12])] + [  # the summary.csv columns every version writes
            f"{s},{kind},5,{hf},0.1,{mg},0.01,0.2,3.0,0.5,1.0,{0.5 + 0.1 * steps.index(s)}" for s, kind, hf, mg in lines]
        io.write_text(series.analysis_dir(workdir) / "summary.csv", "\n".join(rows) + "\n")
    if diversity:
        rows = [",".join(aggregate.CLASS_DIVERSITY_COLUMNS)] + [",".join(map(str, r)) for r in diversity]
        io.write_text(workdir / aggregate.CLASS_DIVERSITY_CSV, "\n".join(rows) + "\n")
    return {"name": name, "overrides": overrides, "effective": overrides, "depends_on": [], "stage": 0,
            "label": " ".join(f"{k}={v}" for k, v in overrides.items() if k != "seed") or "baseline"}


def make_sweep(root, figure, swept_keys, runs):
    io.write_json(root / aggregate.SWEEP_FILE, {"config": "test.py", "figure": figure, "title": "a test sweep",
                                                "swept_keys": swept_keys, "runs": runs})


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_results_csv_columns_values_and_noise_fitting_figure(tmp_path):
    noise = {"noise.amplitude": 0.5, "noise.min_after_epoch": 1}
    lines = [(10, "within", 1e-6, 0.1), (10, "between", 1e-5, 0.8), (20, "within", 2e-6, 0.2),
             (20, "between", 3e-5, 0.9)]
    runs = [make_run(tmp_path, "u0", {"noise.type": "uniform", "seed": 0, **noise}, train_nf=(-0.5, -0.6)),
            make_run(tmp_path, "r1s0", {"noise.type": "radial", "noise.frequency": 1.0, "seed": 0, **noise},
                     train_nf=(-0.2, -0.9), lines=lines, final_test_acc=0.8),
            make_run(tmp_path, "r1s1", {"noise.type": "radial", "noise.frequency": 1.0, "seed": 1, **noise},
                     train_nf=(-0.3, -0.4)),
            make_run(tmp_path, "r2s0", {"noise.type": "radial", "noise.frequency": 2.0, "seed": 0, **noise},
                     train_nf=(-0.1, -0.2))]
    make_sweep(tmp_path, "noise_fitting", ["noise.type", "noise.frequency", "seed"], runs)
    assert cli.main(["report", "--root", str(tmp_path)]) == 0
    with open(tmp_path / "results.csv") as f:
        header = next(csv.reader(f))
    swept = ["noise.type", "noise.frequency", "seed"]
    assert header == ["run", "label", "state", *swept, *[k for k in aggregate.DESIGN_KEYS if k not in swept],
                      *aggregate.RESULT_COLUMNS[3:]]
    rows = {r["run"]: r for r in read_csv(tmp_path / "results.csv")}
    assert [rows[n]["state"] for n in ("u0", "r1s0", "r1s1", "r2s0")] == ["done"] * 4
    r = rows["r1s0"]
    assert (r["noise.type"], float(r["noise.frequency"]), r["model"]) == ("radial", 1.0, "cnn")
    assert float(r["final_test_acc"]) == 0.8
    # min over epochs >= noise.min_after_epoch (1): -0.9 at epoch 2
    assert (float(r["min_train_noise_fitting"]), int(r["min_train_noise_fitting_epoch"])) == (-0.9, 2)
    assert int(r["analysed_step"]) == 20 and float(r["hf_power_between"]) == 3e-5 and float(r["max_grad_within"]) == 0.2
    assert rows["r1s1"]["hf_power_between"] == ""  # no analysis: the column stays empty
    summary = io.read_json(tmp_path / "report" / "summary.json")
    assert summary["figures"] == ["noise_fitting_vs_frequency.png"] and summary["done"] == 4
    assert (tmp_path / "report" / "noise_fitting_vs_frequency.png").read_bytes()[:4] == PNG


def test_class_diversity_figure_and_spearman_from_the_csv_contract(tmp_path):
    """E8 reads analysis/class_diversity/class_diversity.csv (written by the class-diversity
    analysis): Spearman over classes at the last step, of hf_power_mean with each diversity."""
    old = [(10, c, 4, 9.0, 0.1, 1.0, 1.0) for c in range(4)]  # an earlier step: ignored
    last = [(20, c, 4, hf, 0.1, pix, feat) for c, (hf, pix, feat) in
            enumerate([(1e-6, 10.0, 4.0), (2e-6, 20.0, 3.0), (3e-6, 30.0, 2.0), (4e-6, 40.0, 1.0)])]
    runs = [make_run(tmp_path, "cnn", {"model": "cnn"}, diversity=old + last),
            make_run(tmp_path, "mlp", {"model": "mlp"})]
    make_sweep(tmp_path, "class_diversity", ["model"], runs)
    summary = write_sweep_report(tmp_path, quiet=True)
    rows = {r["run"]: r for r in read_csv(tmp_path / "results.csv")}
    assert float(rows["cnn"]["diversity_spearman_pixel"]) == pytest.approx(1.0)
    assert float(rows["cnn"]["diversity_spearman_feature"]) == pytest.approx(-1.0)
    assert rows["mlp"]["diversity_spearman_pixel"] == ""
    assert summary["figures"] == ["hf_vs_class_diversity.png"]
    assert (tmp_path / "report" / "hf_vs_class_diversity.png").read_bytes()[:4] == PNG

    (tmp_path / "cnn" / aggregate.CLASS_DIVERSITY_CSV).unlink()
    summary = write_sweep_report(tmp_path, quiet=True)
    assert summary["figures"] == [] and "class-diversity analysis has not been run" in summary["notes"][0]


@pytest.mark.parametrize("figure,overrides,expected", [
    ("training_time", [{"model": "cnn", "seed": 0}, {"model": "cnn", "seed": 1}, {"model": "mlp", "seed": 0}],
     "hf_vs_epoch.png"),
    ("intervention", [{"weight_decay": 0.0}, {"weight_decay": 5e-4}, {"lr": 0.2}], "intervention.png"),
    ("image_frequency", [{"noise.type": "fourier", "noise.spatial_frequency": 1.5, "noise.amplitude": 0.5},
                         {"noise.type": "f", "noise.amplitude": 0.5},
                         {"noise.type": "f", "noise.amplitude": 0.5, "augment.image_freq.probability": 1.0}],
     "noise_fitting_vs_direction.png"),
])
def test_every_figure_is_drawn(tmp_path, figure, overrides, expected):
    lines = [(s, k, 1e-6 * s, 0.01 * s) for s in (10, 20, 30) for k in ("within", "between")]
    runs = [make_run(tmp_path, f"run{i}", o, lines=lines, train_nf=(-0.5, -0.4, -0.3)) for i, o in enumerate(overrides)]
    make_sweep(tmp_path, figure, sorted({k for o in overrides for k in o}), runs)
    summary = write_sweep_report(tmp_path, quiet=True)
    assert summary["figures"] == [expected] and summary["notes"] == []
    assert (tmp_path / "report" / expected).read_bytes()[:4] == PNG


def test_report_root_of_a_real_sweep(finished_sweep_root):
    assert cli.main(["report", "--root", str(finished_sweep_root)]) == 0
    rows = read_csv(finished_sweep_root / "results.csv")
    assert [r["noise.type"] for r in rows] == ["radial", "uniform"] and {r["state"] for r in rows} == {"done"}
    for r in rows:
        summary = io.read_json(finished_sweep_root / r["run"] / "summary.json")
        assert float(r["final_test_acc"]) == summary["final_test_acc"]
        assert float(r["min_noise_fitting"]) == summary["min_noise_fitting"]
    assert (finished_sweep_root / "report" / "noise_fitting_vs_frequency.png").read_bytes()[:4] == PNG


def test_report_root_needs_a_sweep(tmp_path):
    assert cli.main(["report", "--root", str(tmp_path)]) == 2


def test_damaged_tables_are_one_line_errors_naming_the_file(tmp_path, capsys):
    last = [(20, c, 4, 1e-6 * (c + 1), 0.1, 10.0 * c, 4.0 - c) for c in range(4)]
    runs = [make_run(tmp_path, "cnn", {"model": "cnn"}, diversity=last)]
    make_sweep(tmp_path, "class_diversity", ["model"], runs)
    write_sweep_report(tmp_path, quiet=True)
    assert aggregate.read_results(tmp_path)[0]["run"] == "cnn"
    table = tmp_path / "cnn" / aggregate.CLASS_DIVERSITY_CSV
    table.write_text(table.read_text()[:-8])  # cut mid-row (a copy interrupted)
    assert cli.main(["report", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "class_diversity.csv" in err and "spectral-jax analyze --workdir" in err and "Traceback" not in err
    (tmp_path / "results.csv").write_bytes(b"run,label\n\xff\xfe,\n")
    with pytest.raises(DamagedFile, match="results.csv.*not UTF-8"):
        aggregate.read_results(tmp_path)
