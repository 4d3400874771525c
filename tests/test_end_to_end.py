"""The demo on a shrunken config writes every documented file with the documented keys."""

import csv
import json
import os

import numpy as np

from spectral_jax import cli, io
from spectral_jax.spectral import series
from spectral_jax.spectral.series import SUMMARY_COLUMNS

DEMO_SMOKE = os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":smoke"


def test_demo_writes_every_file(tmp_path, capsys):
    w = tmp_path / "demo"
    assert cli.main(["demo", "--workdir", str(w), "--config", DEMO_SMOKE]) == 0
    out = capsys.readouterr().out
    assert "hf_power within" in out and "demo finished" in out

    config = json.loads((w / "config.json").read_text())
    for key in ("dataset", "data_dir", "model", "epochs", "batch_size", "lr", "momentum", "weight_decay", "seed"):
        assert key in config
    assert config["analysis"]["num_points"] == 24

    records = io.read_jsonl(w / "metrics.jsonl")
    assert len(records) == 2
    steps = [r["step"] for r in records]
    assert sorted(int(p.name) for p in (w / "checkpoints").iterdir()) == steps

    m = 24  # the :smoke analysis
    for step in steps:
        with np.load(w / "analysis" / "interpolation" / f"step_{step}.npz") as f:
            p = f["kind"].shape[0]
            assert f["logits"].shape == (p, m, 10)
            assert f["power"].shape == (p, (m - 1) // 2 + 1)  # one period: M - 1 points
            for name in ("hf_power", "hf_fraction", "centroid", "max_grad", "r_end", "logit_distance"):
                assert f[name].shape == (p,) and np.all(np.isfinite(f[name])), name
            assert f["labels"].shape == (p, 2)
            assert set(np.unique(f["kind"])) == {0, 1}
            assert np.all((f["labels"][:, 0] == f["labels"][:, 1]) == (f["kind"] == 0))

    with open(w / "analysis" / "interpolation" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == SUMMARY_COLUMNS
    assert [(int(r["step"]), r["kind"]) for r in rows] == [(s, k) for s in steps for k in ("within", "between")]
    assert float(rows[-1]["test_acc"]) == records[-1]["test_acc"]
    with np.load(w / "analysis" / "interpolation" / f"step_{steps[-1]}.npz") as f:
        between = f["kind"] == 1
        assert float(rows[-1]["hf_power_mean"]) == np.float64(f["hf_power"][between].astype(np.float64).mean())

    for name in ("spectra.png", "hf_vs_step.png"):
        assert (w / "report" / name).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((w / "report" / "summary.json").read_text())
    assert summary["last_step"] == steps[-1]
    assert set(summary["last"]) == {"within", "between"}
    assert summary["training"]["final_test_acc"] == records[-1]["test_acc"]


def test_analyze_and_report_subcommands(tmp_path, capsys):
    w = tmp_path / "run"
    assert cli.main(["train", "--config", DEMO_SMOKE, "--workdir", str(w), "--config.epochs=1"]) == 0
    assert cli.main(["report", "--workdir", str(w)]) == 2  # nothing analysed yet: a clear error
    assert "spectral-jax analyze" in capsys.readouterr().err
    assert cli.main(["analyze", "--workdir", str(w), "--config.analysis.sampling=reference"]) == 0
    (step,) = [int(p.name) for p in (w / "checkpoints").iterdir()]
    (name,) = series.analysis_names(w)  # not the run's own settings: a folder of its own
    assert name.startswith("pairs-reference-prob_distance-")
    path = w / "analysis" / name / f"step_{step}.npz"
    with np.load(path) as f:
        assert f["power_two_sided"].shape[1] == 24 and str(f["setting_sampling"]) == "reference"
    mtime = path.stat().st_mtime_ns
    assert cli.main(["analyze", "--workdir", str(w), "--config.analysis.sampling=reference"]) == 0
    assert path.stat().st_mtime_ns == mtime  # same settings: not recomputed
    assert cli.main(["report", "--workdir", str(w)]) == 0
    assert (w / "report" / "summary.json").exists()
    assert cli.main(["analyze", "--workdir", str(tmp_path / "nothing")]) == 2


def test_analysis_of_other_splits(tmp_path, capsys):
    w = tmp_path / "run"
    args = ["--config", DEMO_SMOKE, "--config.epochs=1", "--config.train_size=1000"]
    assert cli.main(["train", "--workdir", str(w), *args]) == 0
    assert cli.main(["analyze", "--workdir", str(w), "--config.analysis.split=extra"]) == 2
    assert "has the splits train, test, val" in capsys.readouterr().err
    assert cli.main(["analyze", "--workdir", str(w), "--config.analysis.split=val"]) == 0
    (step,) = [int(p.name) for p in (w / "checkpoints").iterdir()]
    (name,) = series.analysis_names(w)
    with np.load(w / "analysis" / name / f"step_{step}.npz") as f:
        assert str(f["setting_split"]) == "val" and f["pairs"].max() < 1437 - 1000
