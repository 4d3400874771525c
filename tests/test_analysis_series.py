"""`analyze` over checkpoint series and run roots: one folder per setting, step selection, stacked
checkpoints equal one at a time, resume after kill -9 with identical files, clear errors."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from spectral_jax import cli, io
from spectral_jax.config import load_run_config
from spectral_jax.spectral import results as results_lib
from spectral_jax.spectral import series

ORIGINAL_COLUMNS = ("step", "kind", "n_lines", "hf_power_mean", "hf_power_sem", "max_grad_mean", "max_grad_sem",
                    "hf_fraction_mean", "centroid_mean", "r_end_mean", "logit_distance_mean", "test_acc")
FAST = ["--config.analysis.chunk_lines=16"]  # no forward-batch measurement in tests


def header(path):
    with open(path) as f:
        return tuple(next(csv.reader(f)))


def test_each_setting_writes_its_own_folder_and_report_draws_all(run_copy, capsys):
    w = run_copy
    assert cli.main(["analyze", "--workdir", str(w), *FAST]) == 0
    default = w / "analysis" / "interpolation"
    steps = series.analysed_steps(w)
    assert steps == [44, 88] and header(default / "summary.csv")[:12] == ORIGINAL_COLUMNS
    mtimes = {p.name: p.stat().st_mtime_ns for p in default.iterdir()}
    args = ["--config.analysis.lines=random", "--config.analysis.sampling=distance", "--config.analysis.length=6"]
    assert cli.main(["analyze", "--workdir", str(w), *FAST, *args, "--steps", "last"]) == 0
    (other,) = [n for n in series.analysis_names(w) if n != "interpolation"]
    assert other.startswith("random-distance-prob_distance-")
    assert series.analysed_steps(w, other) == [88]  # --steps last
    assert {p.name: p.stat().st_mtime_ns for p in default.iterdir()} == mtimes  # nothing of the first touched
    f = series.load_step(w, 88, other)
    assert set(np.unique(f["kind"])) == {2} and np.all(f["n_points"] == 7)  # 6 units at step 1: 7 points
    np.testing.assert_allclose(f["frequency"][1], 1 / 8)  # padded to 8 points: cycles per unit
    # the same command again computes nothing
    capsys.readouterr()
    assert cli.main(["analyze", "--workdir", str(w), *FAST, *args, "--steps", "last"]) == 0
    assert "analyzed" not in capsys.readouterr().out
    assert cli.main(["report", "--workdir", str(w)]) == 0
    figures = set(os.listdir(w / "report"))
    assert {"spectra.png", "hf_vs_step.png", "class_diversity.png", f"spectra-{other}.png"} <= figures
    summary = io.read_json(w / "report" / "summary.json")
    assert set(summary["analyses"]) == {"interpolation", other} and set(summary["last"]) == {"within", "between"}
    # class diversity of the default pairs analysis, for the aggregated reports
    with open(w / "analysis" / "class_diversity" / "class_diversity.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0])[:7] == ("step", "class", "n_lines", "hf_power_mean", "max_grad_mean", "diversity_pixel",
                                  "diversity_feature")
    assert len(rows) == 2 * 10 and all(float(r["diversity_feature"]) > 0 for r in rows)
    corr = io.read_json(w / "analysis" / "class_diversity" / "class_diversity.json")["correlations"]["88"]
    assert corr["hf_power~pixel"]["ci_low"] <= corr["hf_power~pixel"]["rho"] <= corr["hf_power~pixel"]["ci_high"]


def test_class_diversity_computes_only_new_steps(run_copy, tmp_path, monkeypatch):
    """A checkpoint analysed later adds its class-diversity rows; the earlier step's features are
    not computed again, and the files equal those of one analysis of both steps."""
    reference = shutil.copytree(run_copy, tmp_path / "reference")
    assert cli.main(["analyze", "--workdir", str(reference), *FAST]) == 0
    assert cli.main(["analyze", "--workdir", str(run_copy), *FAST, "--steps", "44"]) == 0
    computed = []
    original = series.diversity_lib.class_diversity
    monkeypatch.setattr(series.diversity_lib, "class_diversity",
                        lambda *a, **k: computed.append(1) or original(*a, **k))
    assert cli.main(["analyze", "--workdir", str(run_copy), *FAST]) == 0
    assert len(computed) == 1  # step 88 only
    for name in ("class_diversity.csv", "class_diversity.json"):
        got, want = (w / "analysis" / "class_diversity" / name for w in (run_copy, reference))
        assert got.read_text() == want.read_text(), name
    # A damaged table (a column lost): rerunning analyze, the way out its error names, rewrites it.
    table = run_copy / "analysis" / "class_diversity" / "class_diversity.csv"
    table.write_text("\n".join(",".join(line.split(",")[:-1]) for line in table.read_text().splitlines()) + "\n")
    assert cli.main(["analyze", "--workdir", str(run_copy), *FAST]) == 0
    assert table.read_text() == (reference / "analysis" / "class_diversity" / "class_diversity.csv").read_text()
    assert len(computed) == 3  # both steps again


def test_stacked_checkpoints_equal_one_by_one(run_copy, tmp_path):
    other = shutil.copytree(run_copy, tmp_path / "other")
    series.analyze_run(run_copy, _config(run_copy, chunk_lines=16), quiet=True)
    series.analyze_run(other, _config(other, chunk_lines=16, stack=2), quiet=True)
    assert io.read_json(other / "analysis" / "interpolation" / "settings.json")["layout"]["stack"] == 2
    for step in (44, 88):
        a, b = series.load_step(run_copy, step), series.load_step(other, step)
        for name in ("logits", "hf_power", "max_grad", "power"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_root_analyses_every_run_in_one_program(trained_run, tmp_path, capsys):
    root = tmp_path / "sweep"
    for name in ("wd_a", "wd_b"):
        shutil.copytree(trained_run, root / name)
    assert cli.main(["analyze", "--root", str(root), *FAST, "--config.analysis.lines=gradient",
                     "--config.analysis.images_per_class=2"]) == 0
    out = capsys.readouterr().out
    assert "4 checkpoint(s) of 2 run(s)" in out  # one program for both runs
    for name in ("wd_a", "wd_b"):
        (folder,) = series.analysis_names(root / name)
        assert folder.startswith("gradient-count-") and series.analysed_steps(root / name, folder) == [44, 88]
    # A run added later: only it is computed, whatever the order of the runs with work left. Its
    # leftover part, cut at another size by an analysis of it alone, is not taken for one of this size.
    shutil.copytree(trained_run, root / "wd_0_new")
    folder = series.analysis_names(root / "wd_a")[0]
    settings = str(series.load_step(root / "wd_a", 44, folder)["settings_json"])
    stale = root / "wd_0_new" / "analysis" / folder / ".parts" / "step_44.lines_8.part_0.npz"
    results_lib.save(stale, {"hf_power": np.full(8, 7.0), "settings_json": np.asarray(settings)})
    assert cli.main(["analyze", "--root", str(root), *FAST, "--config.analysis.lines=gradient",
                     "--config.analysis.images_per_class=2"]) == 0
    assert "2 checkpoint(s) of 3 run(s)" in capsys.readouterr().out
    assert series.analysed_steps(root / "wd_0_new", folder) == [44, 88]
    np.testing.assert_array_equal(series.load_step(root / "wd_0_new", 44, folder)["hf_power"],
                                  series.load_step(root / "wd_a", 44, folder)["hf_power"])
    assert not stale.exists()
    assert cli.main(["analyze", "--root", str(tmp_path / "empty_root_missing")]) == 2


def test_bad_requests_are_one_line_errors(run_copy, capsys):
    w = str(run_copy)
    cases = {
        ("--config.model=mlp",): "are of model cnn (model='cnn', from its config.json); the config asks for mlp",
        ("--steps", "7"): "No complete checkpoint for step 7",
        ("--config.analysis.classes=12",): "Unknown class [12]",
        ("--config.analysis.lines=fourier", "--config.analysis.fourier_index=8,8"): "outside the 8x8",
        ("--config.analysis.pairs_per_class=0", "--config.analysis.pairs_per_class_pair=0"): "both 0",
    }
    for args, message in cases.items():
        assert cli.main(["analyze", "--workdir", w, *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (run_copy / "analysis").exists()  # nothing written by a refused request
    assert cli.main(["analyze", "--workdir", w, "--root", w]) == 2


def test_resume_after_kill_gives_identical_files(run_copy, tmp_path):
    """kill -9 in the middle of an analysis; the rerun continues from the flushed parts (with the
    part size they were written with, even when the rerun asks for another)."""
    reference = shutil.copytree(run_copy, tmp_path / "reference")
    args = ["--config.analysis.pairs_per_class_pair=12", "--config.analysis.flush_lines=32",
            "--config.analysis.chunk_lines=16", "--config.analysis.class_diversity=false"]
    command = [sys.executable, "-m", "spectral_jax.cli", "analyze", "--workdir", str(run_copy), *args]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    name = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        names = [n for n in os.listdir(run_copy / "analysis")] if (run_copy / "analysis").exists() else []
        parts = [p for n in names for p in (run_copy / "analysis" / n / ".parts").glob("*.npz")]
        if len(parts) >= 2:
            name = names[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the analysis ended before it could be killed"
    out = run_copy / "analysis" / name
    assert not (out / "summary.csv").exists()
    rerun = [a.replace("flush_lines=32", "flush_lines=16") for a in command]
    subprocess.run(rerun, env=env, check=True, capture_output=True, timeout=240)
    assert not list((out / ".parts").glob("*"))  # parts merged and removed
    series.analyze_run(reference, _config(reference, **{a.split("=")[0].split(".")[-1]: _value(a) for a in args}),
                       quiet=True)
    want = reference / "analysis" / name
    assert (out / "summary.csv").read_text() == (want / "summary.csv").read_text()
    for step in (44, 88):
        a, b = series.load_step(run_copy, step, name), series.load_step(reference, step, name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _value(arg):
    v = arg.split("=")[1]
    return {"false": False, "true": True}.get(v, int(v) if v.isdigit() else v)


def _config(workdir, **analysis):
    config = load_run_config(workdir)
    for k, v in analysis.items():
        config.analysis[k] = v
    return config


def _as_if_before_the_estimator(w):
    """Make run `w` look like one written before `analysis.estimator` existed: no estimator in its
    config.json, in its analysis record or in its results files."""
    config = io.read_json(w / "config.json")
    del config["analysis"]["estimator"]
    io.write_json(w / "config.json", config)
    out = w / "analysis" / "interpolation"
    record = io.read_json(out / "settings.json")
    del record["settings"]["estimator"]
    io.write_json(out / "settings.json", record)
    for path in out.glob("step_*.npz"):
        arrays = results_lib.load(path)
        settings = {k: v for k, v in json.loads(str(arrays["settings_json"])).items() if k != "estimator"}
        arrays["settings_json"] = np.asarray(json.dumps(settings, sort_keys=True))
        arrays.pop("setting_estimator")
        results_lib.save(path, arrays)


def test_runs_from_before_the_estimator_keep_their_analysis_and_the_new_one_gets_a_folder(run_copy, capsys):
    w = run_copy
    assert cli.main(["analyze", "--workdir", str(w), *FAST, "--config.analysis.estimator=linear"]) == 0
    (name,) = series.analysis_names(w)
    assert name != "interpolation"  # linear is not this run's own estimator (cubic)
    shutil.rmtree(w / "analysis")
    # Analysed with the linear estimator as its own setting, then stripped of the key: an old run.
    config = io.read_json(w / "config.json")
    config["analysis"]["estimator"] = "linear"
    io.write_json(w / "config.json", config)
    assert cli.main(["analyze", "--workdir", str(w), *FAST]) == 0
    _as_if_before_the_estimator(w)
    assert load_run_config(w).analysis.estimator == "linear"
    old = w / "analysis" / "interpolation"

    def results_mtimes():  # the results and the record (summary.csv is rewritten by every analyze)
        return {p.name: p.stat().st_mtime_ns for p in old.iterdir() if p.name != "summary.csv"}

    mtimes = results_mtimes()
    capsys.readouterr()
    assert cli.main(["analyze", "--workdir", str(w), *FAST]) == 0  # nothing to do, no error
    assert "analyzed" not in capsys.readouterr().out
    assert results_mtimes() == mtimes
    # The new estimator on the old run: a folder of its own, recorded as such.
    assert cli.main(["analyze", "--workdir", str(w), *FAST, "--config.analysis.estimator=cubic"]) == 0
    new = [n for n in series.analysis_names(w) if n != "interpolation"]
    assert len(new) == 1 and new[0].startswith("pairs-count-prob_distance-")
    assert io.read_json(w / "analysis" / new[0] / "settings.json")["settings"]["estimator"] == "cubic"
    f = series.load_step(w, 88, new[0])
    assert str(f["setting_estimator"]) == "cubic" and f["power"].shape[1] == (24 - 1) // 2 + 1
    assert results_mtimes() == mtimes


def test_folder_names_of_linear_settings_are_those_of_before_the_estimator():
    import hashlib

    from spectral_jax.config import base_config
    from spectral_jax.spectral import settings as settings_lib

    a = base_config().analysis
    a.lines, a.sampling, a.estimator = "random", "distance", "linear"
    before = {k: v for k, v in settings_lib.relevant_settings(a).items() if k != "estimator"}
    digest = hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:6]
    assert settings_lib.analysis_name(a) == f"random-distance-prob_distance-{digest}"
    a.estimator = "cubic"
    assert settings_lib.analysis_name(a) != f"random-distance-prob_distance-{digest}"
    assert settings_lib.same_settings(json.dumps(before), {**a.to_dict(), "estimator": "linear"})
    assert not settings_lib.same_settings(json.dumps(before), a)
