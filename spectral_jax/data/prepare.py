"""`spectral-jax prepare NAME`: build a tfds dataset once, in array_record format.

Building needs what running does not: TensorFlow (the `[prepare]` extra; tfds encodes images
with it) and network access to download the source files, or for `imagenet2012` the two
ILSVRC2012 tar files placed by hand in DATA_DIR/downloads/manual. Each missing piece is a
`ConfigError` saying what to do, raised before any download starts.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

from spectral_jax.errors import ConfigError
from spectral_jax.data import tfds_source

# name -> host the tfds builder downloads from (None: files are placed by hand).
DOWNLOAD_HOSTS = {
    "cifar10": "www.cs.toronto.edu",
    "cifar100": "www.cs.toronto.edu",
    "cifar10_1": "github.com",
    "svhn_cropped": "ufldl.stanford.edu",
    "imagenet2012": None,
}
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
NETWORK_TIMEOUT_S = 5.0


def preparable_names() -> list[str]:
    return sorted(DOWNLOAD_HOSTS)


def prepare(name: str, data_dir: str = "") -> Path:
    """Builds `name` under `data_dir` (default: tfds' own) as array_record; returns its directory."""
    if name not in DOWNLOAD_HOSTS:
        raise ConfigError(f"Cannot prepare {name!r}; datasets that can be prepared: {', '.join(preparable_names())}. "
                          f"(digits is built in; npz:PATH is read as it is.)")
    if not tensorflow_available():
        raise ConfigError(f"Preparing {name!r} needs TensorFlow, which is not installed. Install the extra: "
                          f"pip install 'spectral-jax[prepare]' (TensorFlow is needed only to prepare, not to run).")
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir or None, file_format="array_record")
    if not builder.is_prepared():
        if name == "imagenet2012":
            _check_manual_files(Path(builder.data_dir_root) / "downloads" / "manual")
        else:
            _check_network(name, DOWNLOAD_HOSTS[name])
    return build_array_record(builder)


def build_array_record(builder) -> Path:
    """Runs `builder.download_and_prepare()` unless the data is there; checks the format."""
    if builder.is_prepared():
        fmt = builder.info.file_format
        if fmt is not None and getattr(fmt, "value", str(fmt)) != "array_record":
            raise ConfigError(
                f"{builder.data_dir} already holds {builder.name} in {getattr(fmt, 'value', fmt)} format, which "
                f"tfds.data_source cannot read. Prepare it into another --data_dir, or convert it in place with "
                f"`tfds convert_format --dataset_version_dir {builder.data_dir} --out_file_format array_record`.")
        print(f"{builder.name} is already prepared in {builder.data_dir}.")
        return Path(builder.data_dir)
    builder.download_and_prepare()
    print(f"Prepared {builder.name} (array_record) in {builder.data_dir}.")
    return Path(builder.data_dir)


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _check_network(name: str, host: str) -> None:
    # Probe once, quickly: tfds' own downloader retries for minutes when offline.
    try:
        socket.create_connection((host, 443), timeout=NETWORK_TIMEOUT_S).close()
    except OSError as e:
        raise ConfigError(f"Preparing {name!r} downloads from {host}, which cannot be reached ({e}). "
                          f"Run `{tfds_source.prepare_command(name)}` on a machine with network access and "
                          f"copy the prepared directory here (then pass it as --config.data_dir).") from None


def _check_manual_files(manual_dir: Path) -> None:
    missing = [f for f in IMAGENET_MANUAL_FILES if not (manual_dir / f).is_file()]
    if missing:
        raise ConfigError(f"imagenet2012 cannot be downloaded automatically: place {', '.join(missing)} "
                          f"(from image-net.org, after registering) in {manual_dir} and run the command again.")
