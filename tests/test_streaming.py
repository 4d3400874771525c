"""imagenet2012 as a streaming source, through the real training loop and the analysis:
train from host batches (bounded prefetch), evaluate, checkpoint, analyse lines."""

import pathlib

import numpy as np
import pytest

from spectral_jax import cli, io
from spectral_jax.config import ConfigError, load_config_file
from spectral_jax.train import train_and_evaluate

REPO = pathlib.Path(__file__).resolve().parent.parent


def stream_config(data_dir):
    c = load_config_file(str(REPO / "configs" / "demo.py") + ":smoke")
    c.dataset, c.data_dir, c.image_size = "imagenet2012", data_dir, 16
    c.batch_size, c.eval_batch_size, c.epochs = 4, 4, 2  # 12 training images: 3 steps per epoch
    c.augment.flip_crop = True  # on-device augmentation applies to streamed batches too
    return c


def test_train_and_analyze_a_streamed_dataset(tmp_path, fake_dir):
    w = tmp_path / "run"
    summary = train_and_evaluate(stream_config(fake_dir), w, quiet=True)
    records = io.read_jsonl(w / "metrics.jsonl")
    assert [r["step"] for r in records] == [3, 6]
    for r in records:
        assert np.isfinite(r["train_loss"]) and 0 <= r["test_acc"] <= 1
    assert records[0]["train_loss"] == pytest.approx(np.log(1000), rel=0.05)  # 1000 classes, zero head
    assert summary["last_step"] == 6
    # resuming a finished streamed run does nothing
    assert train_and_evaluate(stream_config(fake_dir), w, quiet=True)["last_step"] == 6

    assert cli.main(["analyze", "--workdir", str(w)]) == 0
    with np.load(w / "analysis" / "interpolation" / "step_6.npz") as f:
        # 5 validation images, 5 different classes: no within-class pairs, 10 between-class lines
        assert f["kind"].tolist() == [1] * 10
        assert f["logits"].shape == (10, 24, 1000)  # the :smoke analysis
        assert np.all(np.isfinite(f["hf_power"])) and f["pairs"].max() == 4

    # Class diversity on the streamed training split (4 classes of 3 images: one pair each).
    assert cli.main(["analyze", "--workdir", str(w), "--config.analysis.split=train"]) == 0
    (folder,) = [p for p in (w / "analysis").iterdir() if p.name.endswith("-class_diversity")]
    rows = [line.split(",") for line in (folder / "class_diversity.csv").read_text().splitlines()[1:]]
    assert sorted(int(r[1]) for r in rows if r[0] == "6") == [0, 7, 14, 21]
    assert all(int(r[2]) == 1 and float(r[5]) > 0 for r in rows)  # one line per class, images differ
    assert io.read_json(folder / "class_diversity.json")["correlations"]["6"]["hf_power~pixel"]["n_classes"] == 4


def test_streamed_data_rejects_noise_fitting(tmp_path, fake_dir):
    c = stream_config(fake_dir)
    c.noise.type, c.noise.amplitude = "radial", 0.5
    with pytest.raises(ConfigError, match="in-memory dataset"):
        train_and_evaluate(c, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
