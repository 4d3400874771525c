"""The notebook API: the README's example runs as written; Spectra round-trips; lines from
endpoints equal lines from pairs; a run directory as an object; bad input is a clear error."""

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import spectral_jax
from spectral_jax.errors import ConfigError
from spectral_jax.spectral import series

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Using the analysis on your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(trained_run)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    out = capsys.readouterr().out
    assert "within 200" in out and "between 90" in out and "cnn [44, 88]" in out
    assert isinstance(scope["spectra"], spectral_jax.Spectra) and (tmp_path / "spectra.npz").exists()
    assert len(scope["ends"]) == 5 and set(scope["ends"].kind_name) == {"endpoints"}
    assert set(scope["random"].kind_name) == {"random"} and scope["random"].settings["sampling"] == "distance"
    assert not list((trained_run / "checkpoints").parent.glob("analysis"))  # the API writes nothing into a run


def linear(w, x):
    return x.reshape(len(x), -1) @ w


def test_spectra_summary_save_load_and_dataframe(linear_model, tmp_path):
    w, images, labels = linear_model
    s = spectral_jax.interpolation_spectra(linear, w, images, labels, num_points=24, pairs_per_class=3,
                                           pairs_per_class_pair=1, chunk_lines=8)
    rows = {r["kind"]: r for r in s.summary()}
    assert rows["within"]["n_lines"] == 12 and rows["between"]["n_lines"] == 6
    within = s["hf_power"][s.kind == 0]
    assert rows["within"]["hf_power_mean"] == pytest.approx(within.mean())
    assert rows["within"]["hf_power_median"] == pytest.approx(np.median(within))
    assert rows["within"]["hf_power_sem"] == pytest.approx(within.std(ddof=1) / np.sqrt(12))
    s.save(tmp_path / "s.npz")
    back = spectral_jax.Spectra.load(tmp_path / "s.npz")
    assert back.arrays.keys() == s.arrays.keys() and back.settings == s.settings
    for k in s.arrays:
        np.testing.assert_array_equal(back[k], s[k])
    assert set(s.statistics) >= {"hf_power", "max_grad", "max_prob_distance", "length"}
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs pandas"):
            s.to_dataframe()
    else:
        frame = s.to_dataframe()
        assert len(frame) == len(s) and "hf_power" in frame and set(frame["kind"]) == {"within", "between"}


def test_endpoints_pairs_and_uint8_images_agree(linear_model):
    w, images, labels = linear_model
    pairs = np.array([[0, 5], [3, 3], [7, 1]])
    by_pairs = spectral_jax.interpolation_spectra(linear, w, images, labels, pairs=pairs, num_points=24, chunk_lines=4)
    by_ends = spectral_jax.interpolation_spectra(linear, w, images, x0=images[pairs[:, 0]], x1=images[pairs[:, 1]],
                                                 num_points=24, chunk_lines=4)
    np.testing.assert_allclose(by_pairs["hf_power"], by_ends["hf_power"], rtol=1e-4, atol=1e-9)
    assert list(by_pairs.kind_name) == ["between", "within", "between"]
    np.testing.assert_array_equal(by_pairs.pairs, pairs)
    u8 = np.clip(images * 40 + 128, 0, 255).astype(np.uint8)
    mean, std = np.array([0.5], np.float32), np.array([0.2], np.float32)
    as_u8 = spectral_jax.interpolation_spectra(linear, w, u8, labels, pairs=pairs, mean=mean, std=std,
                                               num_points=24, chunk_lines=4)
    as_float = spectral_jax.interpolation_spectra(linear, w, u8.astype(np.float32) / 255, labels, pairs=pairs,
                                                  mean=mean, std=std, num_points=24, chunk_lines=4)
    np.testing.assert_allclose(as_u8["max_grad"], as_float["max_grad"], rtol=1e-4)


def test_api_bad_input_is_a_clear_error(linear_model):
    w, images, labels = linear_model
    call = spectral_jax.interpolation_spectra
    with pytest.raises(ConfigError, match=r"pair indices out of range: \[40\]"):
        call(linear, w, images, labels, pairs=np.array([[0, 40]]))
    with pytest.raises(ConfigError, match="Unknown class"):
        call(linear, w, images, labels, classes=(7,))
    with pytest.raises(ConfigError, match="num_pointz"):
        call(linear, w, images, labels, num_pointz=3)
    with pytest.raises(ConfigError, match=r"directions must have shape \(4, 4, 1\)"):
        call(linear, w, images, labels, directions=np.ones((4, 4, 3)))
    with pytest.raises(ConfigError, match="needs labels"):
        call(linear, w, images)
    with pytest.raises(ConfigError, match="too few"):
        call(linear, w, images[:3], labels[:3], pairs_per_class=5, pairs_per_class_pair=0)
    with pytest.raises(ConfigError, match="mean and std"):
        call(linear, w, images.astype(np.uint8), labels)


def test_load_run(trained_run):
    run = spectral_jax.load_run(trained_run)
    assert run.steps == [44, 88] and run.config.model == "cnn"
    assert run.images("test").images.shape == (360, 8, 8, 1)
    with pytest.raises(ConfigError, match="No complete checkpoint for step 7.*44, 88"):
        run.variables(7)
    with pytest.raises(ConfigError, match="no split 'extra'"):
        run.images("extra")
    features = run.features_fn(run.variables(), jnp.zeros((2, 8, 8, 1)))
    assert features.shape == (2, 128)  # the CNN's penultimate width, 4 x 32
    s = run.spectra(88, chunk_lines=16)
    assert int(s["step"]) == 88 and set(s.kind_name) == {"within", "between"}
    other = spectral_jax.load_run(trained_run)
    other.config.model = "mlp"  # a checkpoint of another model
    with pytest.raises(ConfigError, match="checkpoint of model cnn, config asks for mlp"):
        other.variables(88)
    assert run.summary()["training"]["final_test_acc"] > 0.5


def test_run_spectra_equal_the_analysis_files(run_copy, monkeypatch):
    checked = []  # the input checks run once per analysis and per Run.spectra, before compute
    original = series.checks.check_inputs
    monkeypatch.setattr(series.checks, "check_inputs", lambda *a, **k: checked.append(k) or original(*a, **k))
    series.analyze_run(run_copy, quiet=True)
    run = spectral_jax.load_run(run_copy)
    s = run.spectra(44, chunk_lines=16)
    assert checked == [{"batch_check": False}] * 2
    f = series.load_step(run_copy, 44)
    for name in ("hf_power", "max_grad", "logits"):
        np.testing.assert_allclose(s[name], f[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # Low bins carry the end-slope cubic, which takes its slopes from single steps: forward passes in
    # other batches move them by round-off relative to the line's largest bin.
    np.testing.assert_allclose(s["power"], f["power"], rtol=1e-4, atol=1e-4 * float(f["power"].max()))
    assert set(run.summary()["analyses"]) == {"interpolation"}
