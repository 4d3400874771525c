"""Configs: the shared defaults, loading `configs/FILE.py[:ARG]`, `--config.KEY=VALUE`
overrides, validation before any compute, and durations resolved to steps.

Every experiment config starts from `base_config()` and overrides what differs, so the
top-level keys (`dataset`, `model`, `epochs`, ...) mean the same thing everywhere and
feature groups nest (`analysis.*`).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from spectral_jax import io


class ConfigError(ValueError):
    """A config problem found before any compute; the message says how to fix it."""


ANALYSIS_MODES = ("detrended", "reference")
ANALYSIS_SPLITS = ("test", "train", "val", "extra")  # val: with train_size; extra: CIFAR-10.1
DTYPES = ("float32", "bfloat16")
AUGMENT_POLICIES = ("none", "autoaugment", "randaugment")


def base_config() -> ml_collections.ConfigDict:
    """The defaults every config starts from (PAPER_SPEC §4 recipe, §10 analysis)."""
    c = ml_collections.ConfigDict()
    c.dataset = "digits"
    c.data_dir = ""  # "" = the source's own default location
    c.train_size = 0  # training examples (PAPER_SPEC §4); 0 = all, else the rest becomes `val`
    c.image_size = 0  # side of streamed images (imagenet2012); 0 = the source's default (224)
    c.model = "cnn"
    c.dtype = "float32"  # compute dtype; parameters stay float32
    c.use_batchnorm = True  # False: every BatchNorm becomes one learnable scalar (PAPER_SPEC §3.1)

    # Recipe (PAPER_SPEC §4): Nesterov SGD, per-step cosine from step 1, coupled L2, clip 5.
    # Duration: `epochs`, or `steps` (> 0 overrides epochs; the last epoch may be partial).
    c.epochs = 200
    c.steps = 0
    c.batch_size = 256
    c.eval_batch_size = 256
    c.lr = 0.1
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.grad_clip_norm = 5.0
    c.seed = 0

    # Regularization and intervention variants (PAPER_SPEC §4, §6, E9); all off by default.
    c.label_smoothing = 0.0  # uniform smoothing of the training targets
    c.teacher_workdir = ""  # self-distillation from this run directory's newest checkpoint
    c.distillation_alpha = 0.0  # targets = alpha * labels + (1 - alpha) * teacher softmax
    c.max_accuracy = 0.0  # stop once test accuracy >= this (0 = off)
    c.min_loss = 0.0  # stop once the epoch-mean training CE <= this (0 = off)

    # Noise fitting (PAPER_SPEC §2.1-2.2, §10): frequency-modulated label smoothing.
    c.noise = ml_collections.ConfigDict()
    c.noise.type = "none"  # none, radial, fourier, random, f, 1/f, uniform
    c.noise.frequency = 0.038
    c.noise.frequency_unit = "absolute"  # or "data_std": cycles per std of g(x) over the train set
    c.noise.amplitude = 0.0  # batch-mean smoothing when normalize; must be set for a noise run
    c.noise.normalize = True
    c.noise.spatial_frequency = 2.0  # for "fourier": diagonal index m = floor(s / sqrt(2))
    c.noise.seed = 0  # for "random"
    c.noise.class_index = -1  # -1 = all classes
    c.noise.min_after_epoch = 0  # burn-in for min_noise_fitting_after_burn_in

    # On-device augmentation (PAPER_SPEC §5), all off by default. Order: image_freq -> mixup
    # (batch level) -> policy -> crop -> flip -> cutout. The reference baseline is
    # flip_crop=True, cutout=16.
    c.augment = ml_collections.ConfigDict()
    c.augment.flip_crop = False  # zero-pad 4, random crop (offsets 0..7), horizontal flip p=0.5
    c.augment.cutout = 0  # side of the zeroed square, clipped at the borders; 0 = off
    c.augment.mixup_alpha = 0.0  # lambda ~ Beta(alpha, alpha) per batch; 0 = off
    c.augment.policy = "none"  # or "autoaugment" (95 CIFAR sub-policies) or "randaugment"
    c.augment.randaugment_num_ops = 3  # ops per image, uniform with replacement from 14
    c.augment.randaugment_magnitude = 4  # level on the 0..10 scale
    c.augment.reference_pipeline_bug = False  # True: discard the policy output when flip_crop is on (§8.6)
    c.augment.image_freq = ml_collections.ConfigDict()  # f / 1/f image-frequency augmentation (§2.4)
    c.augment.image_freq.probability = 0.0  # share of examples perturbed; 0 = off
    c.augment.image_freq.magnitude = 4.0  # L2 norm of the added pattern, standardized units
    c.augment.image_freq.f_fraction = 0.5  # share of perturbed examples that get "f" (the rest "1/f")
    c.augment.image_freq.amplitude = 0.5  # uniform label smoothing of perturbed examples

    # Checkpoints at the end of every epoch: the latest `ckpt_keep` are kept, plus a permanent
    # one every `ckpt_every_epochs` epochs (1 = keep every epoch, for training-time studies).
    c.ckpt_keep = 2
    c.ckpt_every_epochs = 10

    # Interpolation spectra (PAPER_SPEC §2.3 pairs, §10 statistics).
    c.analysis = ml_collections.ConfigDict()
    c.analysis.split = "test"
    c.analysis.num_points = 64  # M points per line, both ends included
    c.analysis.pairs_per_class = 200  # within-class lines per class (capped by the data)
    c.analysis.pairs_per_class_pair = 20  # between-class lines per unordered class pair
    c.analysis.chunk_lines = 0  # lines per compiled chunk; 0 = chosen for the backend
    c.analysis.mode = "detrended"  # or "reference" (the released code's convention)

    # The generic `wrn` model: WRN-depth-widen_factor with the blocks of PAPER_SPEC §3.1
    # (stage widths 16k, 32k, 64k for k = widen_factor). wrn_32 / wrn_160 are fixed 28-2 / 28-10.
    c.wrn = ml_collections.ConfigDict()
    c.wrn.depth = 28  # 6n + 4: n blocks per stage
    c.wrn.widen_factor = 2
    return c


# --------------------------------------------------------------------------------------
# Loading and overrides


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:ARG]` by calling its `get_config(ARG)` (ARG defaults to "")."""
    path_str, _, arg = spec.partition(":")
    path = Path(path_str)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path_str!r} (expected --config=configs/FILE.py[:ARG]).")
    module_spec = importlib.util.spec_from_file_location(f"_spectral_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path_str} has no get_config(arg) function.")
    config = module.get_config(arg)  # every config file takes one (possibly empty) string argument
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path_str}: get_config() must return an ml_collections.ConfigDict.")
    return config


def config_from_json(path: str | Path) -> ml_collections.ConfigDict:
    """The resolved config a run wrote to WORKDIR/config.json, on top of today's defaults."""
    config = base_config()
    _merge(config, json.loads(Path(path).read_text()), prefix="")
    return config


def _merge(config: ml_collections.ConfigDict, values: dict, prefix: str) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
            _merge(config[key], value, prefix + key + ".")
        elif key in config:
            config[key] = _coerce(config[key], value, prefix + key)
        else:  # a key this version does not know yet: keep it, typed as written
            config[key] = value


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
    """`["--config.a.b=3", "--config.c", "x"]` -> `[("a.b", "3"), ("c", "x")]`."""
    out, args = [], list(args)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--config."):
            raise ConfigError(f"Unrecognized argument {arg!r}; overrides look like --config.KEY=VALUE.")
        key, eq, value = arg[len("--config."):].partition("=")
        if not eq:
            if not args:
                raise ConfigError(f"Override {arg!r} has no value; use --config.{key}=VALUE.")
            value = args.pop(0)
        out.append((key, value))
    return out


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]) -> None:
    """Sets dotted keys from strings, converting to the existing field's type."""
    for dotted, raw in overrides:
        node, parts = config, dotted.split(".")
        for i, part in enumerate(parts):
            valid = sorted(node.keys())
            if part not in node:
                where = ".".join(parts[:i]) or "the config"
                near = difflib.get_close_matches(part, valid, n=3)
                hint = f" Did you mean {', '.join(near)}?" if near else ""
                raise ConfigError(
                    f"Unknown config key {dotted!r}: {where} has no key {part!r}.{hint} "
                    f"Valid keys there: {', '.join(valid)}."
                )
            if i < len(parts) - 1:
                node = node[part]
                if not isinstance(node, ml_collections.ConfigDict):
                    raise ConfigError(f"Config key {'.'.join(parts[: i + 1])!r} is a value, not a group.")
        if isinstance(node[parts[-1]], ml_collections.ConfigDict):
            raise ConfigError(f"Config key {dotted!r} is a group; set one of its keys instead.")
        node[parts[-1]] = _coerce(node[parts[-1]], _parse_literal(raw), dotted)


def _parse_literal(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _coerce(current: Any, value: Any, key: str) -> Any:
    """Converts `value` to the type of the field's current value, or raises ConfigError."""
    if current is None or value is None:
        return value
    kind = type(current)
    if kind is bool:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        return value if isinstance(value, str) else str(value)
    elif kind in (tuple, list):
        if isinstance(value, (tuple, list)):
            return kind(value)
        return kind([value])
    else:
        return value
    raise ConfigError(f"Config key {key!r} expects {kind.__name__} (like {current!r}), got {value!r}.")


# --------------------------------------------------------------------------------------
# Validation


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for anything that would fail later; cheap, runs before compute."""
    from spectral_jax import data, models  # registries; imported late to keep config import light

    data.check_dataset_name(config.dataset)
    models.check_model_name(config.model)
    _choice("dtype", config.dtype, DTYPES)
    for key in ("epochs", "steps", "batch_size", "eval_batch_size", "ckpt_keep", "ckpt_every_epochs"):
        _positive(key, config[key], allow_zero=key in ("ckpt_keep", "steps"))
    for key in ("lr", "momentum", "weight_decay", "grad_clip_norm", "max_accuracy", "min_loss"):
        if not (isinstance(config[key], (int, float)) and config[key] >= 0 and math.isfinite(config[key])):
            raise ConfigError(f"Config key {key!r} must be a finite number >= 0, got {config[key]!r}.")
    for key in ("label_smoothing", "distillation_alpha"):
        _number_in(key, config[key], 0.0, 1.0)
    if config.teacher_workdir and not (Path(config.teacher_workdir) / "config.json").exists():
        raise ConfigError(f"teacher_workdir {config.teacher_workdir!r} is not a run directory (no config.json).")
    _validate_noise(config.noise)
    _positive("train_size", config.train_size, allow_zero=True)
    _positive("image_size", config.image_size, allow_zero=True)
    _validate_augment(config.augment)
    a = config.analysis
    _choice("analysis.mode", a.mode, ANALYSIS_MODES)
    _choice("analysis.split", a.split, ANALYSIS_SPLITS)
    if not (isinstance(a.num_points, int) and a.num_points >= 8):
        raise ConfigError(f"analysis.num_points must be an integer >= 8, got {a.num_points!r}.")
    for key in ("pairs_per_class", "pairs_per_class_pair", "chunk_lines"):
        _positive(f"analysis.{key}", a[key], allow_zero=True)
    if a.pairs_per_class == 0 and a.pairs_per_class_pair == 0:
        raise ConfigError("analysis.pairs_per_class and analysis.pairs_per_class_pair are both 0: no lines.")
    _validate_wrn(config.wrn)


def _validate_wrn(w) -> None:
    _positive("wrn.depth", w.depth)
    _positive("wrn.widen_factor", w.widen_factor)
    if (w.depth - 4) % 6 or w.depth < 10:
        raise ConfigError(f"wrn.depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {w.depth}.")


def _validate_noise(n) -> None:
    from spectral_jax.data.noise import FREQUENCY_UNITS, NOISE_TYPES

    _choice("noise.type", n.type, NOISE_TYPES)
    _choice("noise.frequency_unit", n.frequency_unit, FREQUENCY_UNITS)
    if n.type != "none" and not n.amplitude > 0:
        raise ConfigError(f"noise.type={n.type!r} needs --config.noise.amplitude > 0 (e.g. 0.5).")
    if n.amplitude < 0 or n.frequency < 0 or not math.isfinite(n.frequency):
        raise ConfigError("noise.amplitude and noise.frequency must be finite numbers >= 0.")
    if not (isinstance(n.class_index, int) and n.class_index >= -1):
        raise ConfigError(f"noise.class_index must be -1 (all classes) or a class index, got {n.class_index!r}.")
    _positive("noise.min_after_epoch", n.min_after_epoch, allow_zero=True)


def _validate_augment(g: ml_collections.ConfigDict) -> None:
    for key in ("flip_crop", "reference_pipeline_bug"):
        if not isinstance(g[key], bool):
            raise ConfigError(f"Config key 'augment.{key}' must be true or false, got {g[key]!r}.")
    _positive("augment.cutout", g.cutout, allow_zero=True)
    _number_in("augment.mixup_alpha", g.mixup_alpha, 0.0, math.inf)
    _choice("augment.policy", g.policy, AUGMENT_POLICIES)
    _positive("augment.randaugment_num_ops", g.randaugment_num_ops)
    _number_in("augment.randaugment_magnitude", g.randaugment_magnitude, 0.0, 10.0)
    f = g.image_freq
    _number_in("augment.image_freq.probability", f.probability, 0.0, 1.0)
    _number_in("augment.image_freq.magnitude", f.magnitude, 0.0, math.inf)
    _number_in("augment.image_freq.f_fraction", f.f_fraction, 0.0, 1.0)
    _number_in("augment.image_freq.amplitude", f.amplitude, 0.0, 1.0)


def _number_in(key: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
    if not ok:
        bounds = f">= {low:g}" if math.isinf(high) else f"in [{low:g}, {high:g}]"
        raise ConfigError(f"Config key {key!r} must be a finite number {bounds}, got {value!r}.")


def _choice(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"Config key {key!r} is {value!r}; valid choices: {', '.join(choices)}.")


def _positive(key: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"Config key {key!r} must be an integer {'>= 0' if allow_zero else '> 0'}, got {value!r}.")


# --------------------------------------------------------------------------------------
# Durations: the loop only ever sees steps.


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int

    @property
    def epochs(self) -> int:
        """Epochs begun (the last one may be partial when the duration is given in steps)."""
        return -(-self.total_steps // self.steps_per_epoch)

    def epoch_end(self, epoch: int) -> int:
        """The global step at the end of 0-based `epoch`."""
        return min((epoch + 1) * self.steps_per_epoch, self.total_steps)


def resolve_schedule(config: ml_collections.ConfigDict, num_train: int) -> Schedule:
    """Steps per epoch drop the leftover examples (PAPER_SPEC §4); `steps` > 0 overrides `epochs`."""
    steps_per_epoch = num_train // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the training split ({num_train} examples); "
            f"use --config.batch_size={min(num_train, 128)} or smaller."
        )
    total = config.steps if config.get("steps", 0) > 0 else steps_per_epoch * config.epochs
    return Schedule(steps_per_epoch=steps_per_epoch, total_steps=total)


def write_config(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    io.write_json(Path(workdir) / "config.json", config.to_dict())


def diff(a: ml_collections.ConfigDict, b: ml_collections.ConfigDict, ignore: Sequence[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs (ignoring top-level groups in `ignore`)."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    keys = sorted(set(fa) | set(fb))
    return [k for k in keys if k.split(".")[0] not in ignore and fa.get(k) != fb.get(k)]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = list(v) if isinstance(v, tuple) else v
    return out
