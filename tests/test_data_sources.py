"""Dataset sources: tfds (mocked and real array_record), npz, splits, standardization,
the ImageNet stream, `prepare`, and the missing-data error."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from spectral_jax import data
from spectral_jax.config import ConfigError
from spectral_jax.data import imagenet, prepare, splits, tfds_source
from spectral_jax.data.dataset import Dataset, Split, channel_stats

REPO = Path(__file__).resolve().parent.parent
CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)  # docs/methods.md §1
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)


# --------------------------------------------------------------------------------------
# tfds through tfds.testing.mock_data


@pytest.mark.parametrize("name, num_classes, split_names", [
    ("cifar10", 10, {"train", "test", "extra"}),  # mock_data provides CIFAR-10.1 too
    ("cifar10_1", 10, {"train", "test", "extra"}),
    ("cifar100", 100, {"train", "test"}),
    ("svhn_cropped", 10, {"train", "test"}),
])
def test_tfds_datasets_load_through_mock_data(name, num_classes, split_names):
    with tfds.testing.mock_data(num_examples=30):
        ds = data.open_dataset(name, "")
    assert ds.name == name and ds.num_classes == num_classes
    assert set(ds.splits) == split_names
    for split in ds.splits.values():
        assert split.images.shape == (30, 32, 32, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int32 and split.labels.min() >= 0 and split.labels.max() < num_classes
    assert ds.image_shape == (32, 32, 3)
    # Standardization is the training split's, and every split (CIFAR-10.1 too) shares it.
    mean, std = channel_stats(ds.split("train").images)
    np.testing.assert_array_equal(ds.mean, mean)
    np.testing.assert_array_equal(ds.std, std)


def test_mocked_cifar10_train_size_split():
    with tfds.testing.mock_data(num_examples=30):
        ds = data.open_dataset("cifar10", "", train_size=20)
    assert len(ds.split("train")) == 20 and len(ds.split("val")) == 10 and len(ds.split("test")) == 30


# --------------------------------------------------------------------------------------
# tfds from a real (synthetic) array_record directory, unmocked


def test_real_array_record_cifar10_in_file_order(fake_dir):
    import fake_tfds

    ds = data.open_dataset("cifar10", fake_dir)
    assert set(ds.splits) == {"train", "test"}  # no CIFAR-10.1 prepared there: no extra split
    for split, n, seed in (("train", 40, 5), ("test", 20, 4)):
        images, labels = fake_tfds.cifar10_arrays(n, seed)
        np.testing.assert_array_equal(ds.split(split).images, images)  # PNG round trip, ids restore order
        np.testing.assert_array_equal(ds.split(split).labels, labels)


def test_cifar10_1_requires_its_data(fake_dir):
    with pytest.raises(ConfigError) as e:
        data.open_dataset("cifar10_1", fake_dir)
    assert "'cifar10_1'" in str(e.value) and f"spectral-jax prepare cifar10_1 --data_dir {fake_dir}" in str(e.value)


def test_data_prepared_in_another_format_is_reported(fake_dir, tmp_path):
    import json
    import shutil

    # A copy of the prepared cifar10 whose metadata says tfrecord (what `tfds build` writes by default).
    version_dir = tmp_path / "cifar10" / "3.0.2"
    shutil.copytree(Path(fake_dir) / "cifar10" / "3.0.2", version_dir)
    info = json.loads((version_dir / "dataset_info.json").read_text())
    (version_dir / "dataset_info.json").write_text(json.dumps(dict(info, fileFormat="tfrecord")))
    with pytest.raises(ConfigError) as e:
        data.open_dataset("cifar10", str(tmp_path))
    assert f"{version_dir} holds cifar10, but tfds.data_source cannot read it" in str(e.value)
    assert f"tfds convert_format --dataset_version_dir {version_dir} --out_file_format array_record" in str(e.value)
    assert "spectral-jax prepare cifar10 --data_dir NEW_DIR" in str(e.value)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn_cropped"])
def test_missing_data_error_is_quick_and_says_what_to_do(tmp_path, name):
    empty = tmp_path / "empty"
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        data.open_dataset(name, str(empty))
    # No download attempt (offline, tfds retries one for minutes); the bound allows a loaded machine.
    assert time.perf_counter() - t0 < 20.0
    msg = str(e.value)
    assert f"Dataset {name!r}" in msg
    assert str(empty) in msg
    assert f"spectral-jax prepare {name} --data_dir {empty}" in msg
    assert "spectral-jax[prepare]" in msg


def test_missing_data_error_with_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "default_data_dir", lambda: str(tmp_path))
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"spectral-jax prepare cifar100\n"):
        data.open_dataset("cifar100", "")


def test_train_cli_fails_fast_on_missing_data_and_writes_nothing(tmp_path):
    workdir = tmp_path / "W"
    empty = tmp_path / "empty"
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "spectral_jax.cli", "train", "--config=configs/demo.py", "--config.dataset=cifar10",
         f"--config.data_dir={empty}", "--workdir", str(workdir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert f"spectral-jax prepare cifar10 --data_dir {empty}" in proc.stderr
    assert not workdir.exists()
    assert elapsed < 60, f"took {elapsed:.1f} s"  # start-up and imports included, on a loaded machine


# --------------------------------------------------------------------------------------
# Names


def test_dataset_names_and_npz_form():
    for name in ("digits", "cifar10", "cifar10_1", "cifar100", "svhn_cropped", "imagenet2012", "npz:/x/y.npz"):
        data.check_dataset_name(name)
    with pytest.raises(ConfigError) as e:
        data.check_dataset_name("cifar11")
    for name in ("digits", "cifar10", "cifar100", "svhn_cropped", "imagenet2012", "npz:PATH"):
        assert name in str(e.value)
    with pytest.raises(ConfigError):
        data.check_dataset_name("npz:")


# --------------------------------------------------------------------------------------
# Splits and standardization


def _toy_dataset(n=50):
    rng = np.random.default_rng(1)
    train = Split(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), np.arange(n, dtype=np.int32))
    test = Split(rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8), np.zeros(7, np.int32))
    mean, std = channel_stats(train.images)
    return Dataset("toy", n, mean, std, {"train": train, "test": test})


def test_train_val_split_sizes_membership_and_determinism():
    ds = _toy_dataset(50)
    out = splits.split_train_val(ds, 30)
    assert len(out.split("train")) == 30 and len(out.split("val")) == 20 and len(out.split("test")) == 7
    # Membership: the reference's np.random.seed(0); np.random.shuffle(arange(N)); first train_size.
    np.random.seed(0)
    perm = np.arange(50)
    np.random.shuffle(perm)
    np.testing.assert_array_equal(out.split("train").labels, np.sort(perm[:30]))  # labels = original index
    np.testing.assert_array_equal(out.split("val").labels, np.sort(perm[30:]))
    again = splits.split_train_val(ds, 30)
    np.testing.assert_array_equal(again.split("train").images, out.split("train").images)
    # Standardization stays the whole training split's.
    np.testing.assert_array_equal(out.mean, ds.mean)


def test_train_size_zero_or_all_keeps_the_split_and_too_large_is_an_error():
    ds = _toy_dataset(50)
    assert splits.split_train_val(ds, 0) is ds
    assert splits.split_train_val(ds, 50) is ds and "val" not in ds.splits
    with pytest.raises(ConfigError, match="larger than toy's training split"):
        splits.split_train_val(ds, 51)


def test_digits_train_size():
    ds = data.open_dataset("digits", "", train_size=1000)
    assert len(ds.split("train")) == 1000 and len(ds.split("val")) == 437 and len(ds.split("test")) == 360


def test_channel_stats_match_float64_numpy():
    images = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    mean, std = channel_stats(images, chunk=37)
    x = images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-7)
    np.testing.assert_allclose(std, x.std(0), atol=1e-7)
    assert mean.dtype == std.dtype == np.float32


@pytest.mark.skipif(not (Path(tfds_source.default_data_dir()) / "cifar10").exists(),
                    reason="real CIFAR-10 not prepared (spectral-jax prepare cifar10)")
def test_real_cifar10_standardization_equals_paper_constants():
    ds = data.open_dataset("cifar10")
    np.testing.assert_allclose(ds.mean, CIFAR10_MEAN, atol=1e-6)
    np.testing.assert_allclose(ds.std, CIFAR10_STD, atol=1e-6)


# --------------------------------------------------------------------------------------
# npz:PATH


def test_npz_with_and_without_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 5, 6, 1), dtype=np.uint8)
    labels = np.arange(20) % 4
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    ds = data.open_dataset(f"npz:{tmp_path / 'a.npz'}")
    assert ds.num_classes == 4 and ds.image_shape == (5, 6, 1)
    assert len(ds.split("train")) == 16 and len(ds.split("test")) == 4
    again = data.open_dataset("npz:a.npz", str(tmp_path))  # relative to data_dir
    np.testing.assert_array_equal(again.split("test").images, ds.split("test").images)
    np.testing.assert_array_equal(ds.mean, channel_stats(ds.split("train").images)[0])

    np.savez(tmp_path / "b.npz", images=images, labels=labels, test_images=images[:3], test_labels=np.array([0, 6, 1]))
    ds = data.open_dataset(f"npz:{tmp_path / 'b.npz'}", train_size=12)
    assert ds.num_classes == 7 and len(ds.split("test")) == 3
    assert len(ds.split("train")) == 12 and len(ds.split("val")) == 8


def test_npz_errors(tmp_path):
    with pytest.raises(ConfigError, match="no file"):
        data.open_dataset(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "f.npz", images=np.zeros((4, 2, 2, 1), np.float32), labels=np.zeros(4, int))
    with pytest.raises(ConfigError, match="uint8"):
        data.open_dataset(f"npz:{tmp_path / 'f.npz'}")
    np.savez(tmp_path / "g.npz", images=np.zeros((4, 2, 2, 1), np.uint8))
    with pytest.raises(ConfigError, match="no array 'labels'"):
        data.open_dataset(f"npz:{tmp_path / 'g.npz'}")


# --------------------------------------------------------------------------------------
# imagenet2012: the streaming source


def test_one_open_for_in_memory_and_streamed_datasets(fake_dir, digits):
    streamed = data.open_dataset("imagenet2012", fake_dir, image_size=24)
    assert streamed.streamed and not digits.streamed
    for ds in (streamed, digits):  # one split interface
        split = ds.split("test")
        assert split.labels.shape == (len(split),) and split.image_shape == ds.image_shape
        few = split.take([1, 0])
        assert few.images.shape == (2, *ds.image_shape) and list(few.labels) == list(split.labels[[1, 0]])
    with pytest.raises(ConfigError, match="imagenet2012 is streamed: train_size is not supported"):
        data.open_dataset("imagenet2012", fake_dir, train_size=10)


def test_imagenet_missing_data_error(tmp_path):
    with pytest.raises(ConfigError, match="spectral-jax prepare imagenet2012 --data_dir"):
        data.open_dataset("imagenet2012", str(tmp_path))


def test_imagenet_stream_from_array_record(fake_dir):
    import fake_tfds

    ds = imagenet.load(fake_dir, image_size=24)
    assert ds.num_classes == 1000 and ds.image_shape == (24, 24, 3)
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 12 and len(test) == 5
    assert sorted(test.labels.tolist()) == sorted((7 * i + 100) % 1000 for i in range(5))

    # Evaluation: every example once, file order, last batch padded and masked.
    batches = list(test.batches(2))
    assert [b.mask.sum() for b in batches] == [2, 2, 1]
    assert all(b.images.shape == (2, 24, 24, 3) and b.images.dtype == np.uint8 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b.labels[b.mask] for b in batches]), test.labels)
    # The centre crop of a decoded JPEG is close to the centre crop of the original image.
    first = test.take([0])
    ref = imagenet.center_crop(imagenet.decode(fake_tfds.imagenet_image(100 + _index_of(test, 0)), 24), 24)
    assert np.abs(first.images[0].astype(int) - ref.astype(int)).mean() < 6

    # Training: full batches only, order and crops a function of (seed, epoch).
    assert train.take([3, 1]).images.shape == (2, 24, 24, 3)  # analysis: centre crops, any split
    e0 = [b for b in train.batches(5, seed=1, epoch=0)]
    assert len(e0) == 2 and all(b.mask.all() for b in e0)
    e0_again = list(train.batches(5, seed=1, epoch=0))
    e1 = list(train.batches(5, seed=1, epoch=1))
    np.testing.assert_array_equal(e0[0].images, e0_again[0].images)
    assert not np.array_equal(e0[0].labels, e1[0].labels) or not np.array_equal(e0[0].images, e1[0].images)


def _index_of(split, position):
    """The synthetic index of the record at `position` (labels are (7 i + 100) % 1000)."""
    label = int(split.labels[position])
    return next(i for i in range(5) if (7 * i + 100) % 1000 == label)


class _CountingSource:
    def __init__(self, n):
        self.n, self.reads, self.lock = n, 0, threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.lock:
            self.reads += 1
        return {"image": np.full((8, 8, 3), i % 256, np.uint8), "label": i}


def test_stream_prefetch_is_bounded():
    source = _CountingSource(200)
    split = imagenet.StreamSplit(source, image_size=8, train=False, num_workers=2)
    it = split.batches(4, prefetch=2)
    first = next(it)
    assert first.labels.tolist() == [0, 1, 2, 3]
    time.sleep(0.3)  # let the producer run ahead as far as it may
    # The consumer holds 1 batch; at most `prefetch` wait in the queue and 1 is being built.
    assert source.reads <= 4 * (1 + 2 + 1)
    it.close()


def test_stream_producer_errors_reach_the_consumer():
    def broken():
        yield 1
        raise OSError("disk gone")

    it = imagenet.prefetch_iterator(broken, 1)
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)


# --------------------------------------------------------------------------------------
# prepare


def test_prepare_needs_tensorflow(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "tensorflow_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'spectral-jax\[prepare\]'"):
        prepare.prepare("cifar10", str(tmp_path))


def test_prepare_needs_network(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "tensorflow_available", lambda: True)

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(prepare.socket, "create_connection", offline)
    with pytest.raises(ConfigError, match="www.cs.toronto.edu, which cannot be reached"):
        prepare.prepare("cifar10", str(tmp_path))
    assert not (tmp_path / "cifar10").exists()


def test_prepare_imagenet_needs_manual_files(monkeypatch, tmp_path):
    monkeypatch.setattr(prepare, "tensorflow_available", lambda: True)
    with pytest.raises(ConfigError, match="ILSVRC2012_img_train.tar"):
        prepare.prepare("imagenet2012", str(tmp_path))


def test_prepare_unknown_name():
    with pytest.raises(ConfigError, match="cifar10, cifar100, cifar10_1, imagenet2012, svhn_cropped"):
        prepare.prepare("mnist")


def test_build_array_record_writes_a_readable_directory(tmp_path, capsys):
    import fake_tfds

    out = prepare.build_array_record(fake_tfds.FakeCifar10(data_dir=str(tmp_path), file_format="array_record"))
    assert (out / "dataset_info.json").exists()
    assert len(data.open_dataset("cifar10", str(tmp_path)).split("test")) == 20
    again = prepare.build_array_record(fake_tfds.FakeCifar10(data_dir=str(tmp_path), file_format="array_record"))
    assert again == out and "already prepared" in capsys.readouterr().out


def test_prepare_cli_reports_missing_tensorflow(monkeypatch, tmp_path, capsys):
    from spectral_jax import cli

    monkeypatch.setattr(prepare, "tensorflow_available", lambda: False)
    assert cli.main(["prepare", "svhn_cropped", "--data_dir", str(tmp_path)]) == 2
    assert "needs TensorFlow" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# configs/cifar10.py


@pytest.mark.parametrize("arg", ["", "cpu", "smoke"])
def test_cifar10_config_validates(arg):
    from spectral_jax.config import load_config_file, validate

    c = load_config_file(str(REPO / "configs" / "cifar10.py") + (f":{arg}" if arg else ""))
    validate(c)
    assert c.dataset == "cifar10" and c.augment.flip_crop and c.augment.cutout == 16
    assert c.augment.policy == "none" and c.augment.mixup_alpha == 0

