"""Configs: the shared defaults, loading `configs/FILE.py[:ARG]`, `--config.KEY=VALUE`
overrides, validation before any compute, a run's own config.json, and durations resolved to
steps.

Every experiment config starts from `base_config()` and overrides what differs, so the
top-level keys (`dataset`, `model`, `epochs`, ...) mean the same thing everywhere and
feature groups nest (`analysis.*`). Validation asks the data and model registries for their
names; they never import this module.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.resources
import importlib.util
import math
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from spectral_jax import data, io, models
from spectral_jax.data.noise import FREQUENCY_UNITS, NOISE_TYPES
from spectral_jax.errors import ConfigError, DamagedFile, did_you_mean

# Keys in which the members of an ensemble (runs trained together in one program, jax.vmap
# over their states) may differ: they change numbers, not shapes or code paths.
ENSEMBLE_KEYS = ("seed", "lr", "weight_decay", "label_smoothing")
CONFIGS_PACKAGE = "spectral_jax.configs"  # the top-level configs/ folder, installed with the package
CONFIG_ARGS = ("cpu", "smoke")  # the laptop-sized variants every experiment config offers


# Analysis choices (docs/analysis.md); the spectral layer reads them from here.
ANALYSIS_LINES = ("pairs", "random", "fourier", "f", "1/f", "gradient", "plane")
ANALYSIS_SAMPLINGS = ("count", "distance", "reference")
ANALYSIS_SIGNALS = ("prob_distance", "class_logit", "predicted_prob")
ANALYSIS_CUTOFF_UNITS = ("cycles_per_line", "bins", "cycles_per_unit")
# hf_power estimators: cubic (default), linear (the first release's, kept to reproduce its results), hann.
ANALYSIS_ESTIMATORS = ("cubic", "linear", "hann")
ANALYSIS_SPLITS = ("test", "train", "val", "extra")  # val: with train_size; extra: CIFAR-10.1
DTYPES = ("float32", "bfloat16")
AUGMENT_POLICIES = ("none", "autoaugment", "randaugment")

# Every key of every config: (dotted key, default, one line of help). `base_config()` is built
# from it and `spectral-jax config` prints it, so a key and its help never drift apart.
FIELDS: tuple[tuple[str, Any, str], ...] = (
    ("dataset", "digits", "dataset: digits, cifar10, cifar10_1, cifar100, svhn_cropped, imagenet2012 or npz:PATH"),
    ("data_dir", "", "where prepared data lives; '' = the source's default (tfds: ~/tensorflow_datasets)"),
    ("train_size", 0, "training examples kept (fixed seed-0 shuffle); the rest become `val`; 0 = all"),
    ("image_size", 0, "side of streamed images (imagenet2012); 0 = the source's default (224)"),
    ("model", "cnn", "registry model (spectral-jax models lists them)"),
    ("dtype", "float32", "compute dtype, float32 or bfloat16; parameters stay float32"),
    ("use_batchnorm", True, "false: every BatchNorm becomes one learnable scalar"),
    # Recipe (docs/methods.md §4): Nesterov SGD, per-step cosine from step 1, coupled L2, clip 5.
    ("epochs", 200, "training epochs (the cosine schedule spans them)"),
    ("steps", 0, "training steps; > 0 overrides epochs (the last epoch may be partial)"),
    ("batch_size", 256, "global training batch, split over all devices"),
    ("eval_batch_size", 256, "global evaluation batch"),
    ("lr", 0.1, "peak learning rate of the per-step cosine schedule"),
    ("schedule_restart_step", 0, "step where the current cosine cycle starts (set by train --restart_schedule)"),
    ("momentum", 0.9, "Nesterov momentum; 0 = plain SGD"),
    ("weight_decay", 5e-4, "coupled L2: wd * 0.5 * sum of squares of every parameter, added to the loss"),
    ("grad_clip_norm", 5.0, "clip gradients to this global norm; 0 = off"),
    ("seed", 0, "initialization, data order (seed, epoch) and randomness (seed, step)"),
    ("ensemble", 1, "members trained together in one program (jax.vmap), each in WORKDIR/<key>_<value>/"),
    ("ensemble_key", "seed", "what differs between members: seed, lr, weight_decay or label_smoothing"),
    ("ensemble_values", (), "the members' values of ensemble_key; () with seed = seed, seed+1, ..."),
    # Regularization and intervention variants (docs/methods.md §4, §6, E9); all off by default.
    ("label_smoothing", 0.0, "uniform smoothing of the training targets"),
    ("teacher_workdir", "", "self-distillation from this run directory's newest checkpoint"),
    ("distillation_alpha", 0.0, "targets = alpha * labels + (1 - alpha) * teacher softmax"),
    ("max_accuracy", 0.0, "stop once test accuracy >= this; 0 = off"),
    ("min_loss", 0.0, "stop once the epoch-mean training CE <= this; 0 = off"),
    # Noise fitting (docs/methods.md §2.1-2.2, §10): frequency-modulated label smoothing.
    ("noise.type", "none", "label noise: none, radial, fourier, random, f, 1/f, uniform"),
    ("noise.frequency", 0.038, "cycles per unit of the noise feature g(x) (or per std, see frequency_unit)"),
    ("noise.frequency_unit", "absolute", "absolute, or data_std: cycles per std of g(x) over the train set"),
    ("noise.amplitude", 0.0, "batch-mean smoothing (normalize) or its scale; must be > 0 for a noise run"),
    ("noise.normalize", True, "scale eps so that its batch mean is the amplitude"),
    ("noise.spatial_frequency", 2.0, "fourier noise: diagonal index m = floor(s / sqrt(2))"),
    ("noise.seed", 0, "random noise: the direction's numpy seed"),
    ("noise.class_index", -1, "perturb only this class; -1 = all classes"),
    ("noise.min_after_epoch", 0, "burn-in for min_noise_fitting_after_burn_in"),
    # On-device augmentation (docs/methods.md §5). Order: image_freq -> mixup -> policy -> crop
    # -> flip -> cutout. The reference baseline is flip_crop=True, cutout=16.
    ("augment.flip_crop", False, "zero-pad 4, random crop (offsets 0..7), horizontal flip p=0.5"),
    ("augment.cutout", 0, "side of the zeroed square, clipped at the borders; 0 = off"),
    ("augment.mixup_alpha", 0.0, "mixup: lambda ~ Beta(alpha, alpha) per batch; 0 = off"),
    ("augment.policy", "none", "none, autoaugment (95 CIFAR sub-policies) or randaugment"),
    ("augment.randaugment_num_ops", 3, "randaugment: ops per image, uniform with replacement from 14"),
    ("augment.randaugment_magnitude", 4, "randaugment: level on the 0..10 scale"),
    ("augment.reference_pipeline_bug", False, "true: discard the policy output when flip_crop is on"),
    ("augment.image_freq.probability", 0.0, "f / 1/f image-frequency augmentation: share perturbed; 0 = off"),
    ("augment.image_freq.magnitude", 4.0, "L2 norm of the added pattern, standardized units"),
    ("augment.image_freq.f_fraction", 0.5, "share of perturbed examples that get f (the rest 1/f)"),
    ("augment.image_freq.amplitude", 0.5, "uniform label smoothing of perturbed examples"),
    # Checkpoints at the end of every epoch.
    ("ckpt_keep", 2, "latest checkpoints kept; 0 = keep all"),
    ("ckpt_every_epochs", 10, "also keep one permanently every this many epochs"),
    # Interpolation spectra (docs/methods.md §2.3 pairs, §10 statistics; docs/analysis.md every option).
    ("analysis.name", "", "folder analysis/<name>/; '' = interpolation for the default settings, else derived from them"),
    ("analysis.lines", "pairs", "pairs, random, fourier, f, 1/f, gradient (directions from each image) or plane"),
    ("analysis.split", "test", "split the lines are drawn from: test, train, val, extra"),
    ("analysis.classes", (), "only these classes (labels); () = all"),
    ("analysis.num_points", 64, "M points per line, both ends included (count and reference sampling)"),
    ("analysis.pairs_per_class", 200, "pairs: within-class lines per class (capped by the data)"),
    ("analysis.pairs_per_class_pair", 20, "pairs: between-class lines per unordered class pair"),
    ("analysis.images_per_class", 100, "direction lines: start images per class, split order; 0 = all"),
    ("analysis.length", 10.0, "direction lines: length L in standardized units"),
    ("analysis.centered", False, "direction lines: t in [-L/2, L/2] around the image instead of [0, L]"),
    ("analysis.spatial_frequency", 2.0, "fourier lines: diagonal basis image m = floor(s / sqrt(2))"),
    ("analysis.fourier_index", (), "fourier lines: basis image (i, j) of the fftshifted grid; () = from spatial_frequency"),
    ("analysis.direction_seed", 0, "random lines: seed of the Gaussian directions (one per line)"),
    ("analysis.planes", 10, "plane: planes through image triples of three classes"),
    ("analysis.grid", 32, "plane: G x G points per plane"),
    ("analysis.sampling", "count", "count (M points, cycles per line), distance (fixed step, cycles per unit) or reference"),
    ("analysis.step", 1.0, "distance sampling: standardized units between points"),
    ("analysis.max_points", 1024, "distance sampling: the most points a line may have (an error beyond)"),
    ("analysis.signal", "prob_distance", "prob_distance (||p_k - p_0||), class_logit or predicted_prob"),
    ("analysis.estimator", "cubic", "detrending before the FFT: cubic (end values and end slopes), linear (ends only; the first release's) or hann (linear, then a Hann taper)"),
    ("analysis.hf_cutoff", 0.0, "high-frequency cutoff; 0 = 8 cycles per line (count), 0.1 cycles/unit (distance), ceil(N/8) bins (reference, estimator=linear)"),
    ("analysis.hf_cutoff_unit", "", "cycles_per_line, bins or cycles_per_unit; '' = the default of the sampling and estimator"),
    ("analysis.save_logits", True, "save per-point logits [P, N, K] (false: flat memory for huge analyses)"),
    ("analysis.class_diversity", True, "pairs: per-class hf statistics against class diversity (docs/methods.md §2.5)"),
    ("analysis.diversity_images", 100, "class diversity: images per class for the pairwise distances"),
    ("analysis.chunk_lines", 0, "lines per compiled chunk; 0 = chosen from the forward batch"),
    ("analysis.forward_batch", 0, "points per forward pass and device; 0 = measured once per model and backend"),
    ("analysis.stack", 0, "checkpoints evaluated together with jax.vmap; 0 = the backend's default (1 on CPU)"),
    ("analysis.flush_lines", 4096, "lines per part flushed to disk (a killed analysis resumes from its parts)"),
    # The generic `wrn` model (wrn_32 / wrn_160 are fixed 28-2 / 28-10).
    ("wrn.depth", 28, "WRN depth, 6n + 4 (n blocks per stage)"),
    ("wrn.widen_factor", 2, "WRN widening k: stage widths 16k, 32k, 64k"),
)


def base_config() -> ml_collections.ConfigDict:
    """The defaults every config starts from (docs/methods.md §4 recipe, §10 analysis)."""
    c = ml_collections.ConfigDict()
    for dotted, default, _ in FIELDS:
        node, *parents = c, *dotted.split(".")[:-1]
        for part in parents:
            if part not in node:
                node[part] = ml_collections.ConfigDict()
            node = node[part]
        node[dotted.split(".")[-1]] = default
    return c


def describe(config: ml_collections.ConfigDict) -> str:
    """Every key with its value and one line of help (keys a config file added get none)."""
    helps = {k: h for k, _, h in FIELDS}
    flat = _flatten(config.to_dict())
    width = max(len(f"{k} = {v!r}") for k, v in flat.items())
    return "\n".join(f"{f'{k} = {v!r}':<{width}}  # {helps.get(k, '(set by the config file)')}"
                     for k, v in flat.items())


# --------------------------------------------------------------------------------------
# Loading and overrides


def resolve_config_path(path_str: str) -> Path:
    """A config file by path: relative to the working directory, else inside the installed
    `configs/` folder (`configs/demo.py`, `demo.py` and `demo` all name the packaged demo)."""
    path = Path(path_str).expanduser()
    if path.is_file():
        return path
    packaged = importlib.resources.files(CONFIGS_PACKAGE)
    rel = path.as_posix().removeprefix("configs/")
    for candidate in (rel, rel + ".py"):
        target = packaged.joinpath(candidate)
        if target.is_file():
            return Path(str(target))
    names = sorted(p.name for p in packaged.iterdir() if p.name.endswith(".py") and not p.name.startswith("_"))
    raise ConfigError(f"Config file not found: {path_str!r}, neither from the working directory nor among the "
                      f"installed configs ({', '.join(names)}); use --config=configs/FILE.py[:ARG].")


def load_config_module(spec: str, function: str = "get_config"):
    """-> (module, ARG) for `path/to/file.py[:ARG]`; the module must define `function(arg)`."""
    path_str, _, arg = spec.partition(":")
    path = resolve_config_path(path_str)
    module_spec = importlib.util.spec_from_file_location(f"_spectral_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise ConfigError(f"{path_str} has no {function}(arg) function.")
    return module, arg


def call_config_function(spec: str, function: str = "get_config", module=None):
    """`function(ARG)` of the config file `spec` (`module`: the file, already loaded); a
    ValueError it raises becomes a ConfigError."""
    if module is None:
        module, arg = load_config_module(spec, function)
    else:
        arg = spec.partition(":")[2]
        if not hasattr(module, function):
            raise ConfigError(f"{spec.partition(':')[0]} has no {function}(arg) function.")
    try:
        return getattr(module, function)(arg)  # every config function takes one (possibly empty) string
    except ConfigError:
        raise
    except ValueError as e:  # a config file's own complaint about its argument
        raise ConfigError(f"{spec.partition(':')[0]}: {e}") from e


def load_config_file(spec: str, module=None) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:ARG]` by calling its `get_config(ARG)` (ARG defaults to "";
    `module`: the file, already loaded)."""
    path_str = spec.partition(":")[0]
    config = call_config_function(spec, "get_config", module)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path_str}: get_config() must return an ml_collections.ConfigDict.")
    return config


def config_arg(arg: str, file: str, allowed: Sequence[str] = CONFIG_ARGS) -> str:
    """A config file's ARG, checked: '' (full scale) or one of `allowed`."""
    if arg and arg not in allowed:
        raise ConfigError(f"{Path(file).name}: unknown argument {arg!r}.{did_you_mean(arg, allowed)} "
                          f"Use '' (full scale) or {', '.join(repr(a) for a in allowed)}.")
    return arg


def shrink_to_digits(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The `:cpu`/`:smoke` form of a full-scale experiment: the small CNN on the embedded digits,
    no augmentation, batch 32, lr 0.05 (what runs in seconds to minutes on a laptop CPU)."""
    c.dataset, c.data_dir, c.train_size, c.model = "digits", "", 0, "cnn"
    c.augment.flip_crop, c.augment.cutout = False, 0
    c.batch_size, c.lr = 32, 0.05
    return c


def shrink_analysis(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The analysis of a `:smoke` run: 24 points (8 cycles per line and above: 4 bins), 2 within-class
    lines per class, 1 per class pair."""
    c.analysis.num_points, c.analysis.pairs_per_class, c.analysis.pairs_per_class_pair = 24, 2, 1
    return c


def config_path(workdir: str | Path) -> Path:
    """WORKDIR/config.json: a run directory's identity."""
    return Path(workdir) / "config.json"


def is_run_dir(workdir: str | Path) -> bool:
    return config_path(workdir).is_file()


def load_run_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The resolved config of the run in `workdir` (its config.json)."""
    if not is_run_dir(workdir):
        raise ConfigError(f"{config_path(workdir)} not found: is {workdir} a spectral-jax run directory?")
    return config_from_json(config_path(workdir))


def config_from_json(path: str | Path) -> ml_collections.ConfigDict:
    """The resolved config a run wrote to WORKDIR/config.json, on top of today's defaults; a
    damaged file (not JSON, or values of the wrong type) is a `DamagedFile` with the way out."""
    way_out = (f"It holds the run's config: put back a copy, or delete it and rerun spectral-jax train "
               f"--config=FILE --workdir {Path(path).parent} with the config file and overrides that made the run.")
    values = io.read_json(path, way_out)
    config = base_config()
    analysis = values.get("analysis")
    mode = analysis.pop("mode", None) if isinstance(analysis, dict) else None  # before analysis.sampling
    if mode is not None:
        analysis.setdefault("sampling", "reference" if mode == "reference" else "count")
    if isinstance(analysis, dict):  # written before analysis.estimator existed: the linear estimator
        analysis.setdefault("estimator", "linear")
    try:
        _merge(config, values, prefix="")
    except (TypeError, ValueError) as e:  # a value of the wrong type for its key (ConfigError included)
        raise DamagedFile(path, str(e).rstrip("."), way_out) from e
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
                raise ConfigError(
                    f"Unknown config key {dotted!r}: {where} has no key {part!r}.{did_you_mean(part, valid)} "
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
    data.check_dataset_name(config.dataset)
    models.check_model_name(config.model)
    _choice("dtype", config.dtype, DTYPES)
    for key in ("epochs", "steps", "batch_size", "eval_batch_size", "ckpt_keep", "ckpt_every_epochs",
                "schedule_restart_step"):
        _positive(key, config[key], allow_zero=key in ("ckpt_keep", "steps", "schedule_restart_step"))
    for key in ("lr", "momentum", "weight_decay", "grad_clip_norm", "max_accuracy", "min_loss"):
        if not (isinstance(config[key], (int, float)) and config[key] >= 0 and math.isfinite(config[key])):
            raise ConfigError(f"Config key {key!r} must be a finite number >= 0, got {config[key]!r}.")
    for key in ("label_smoothing", "distillation_alpha"):
        _number_in(key, config[key], 0.0, 1.0)
    _validate_ensemble(config)
    if config.teacher_workdir and not is_run_dir(config.teacher_workdir):
        raise ConfigError(f"teacher_workdir {config.teacher_workdir!r} is not a run directory (no config.json).")
    _validate_noise(config.noise)
    _positive("train_size", config.train_size, allow_zero=True)
    _positive("image_size", config.image_size, allow_zero=True)
    _validate_augment(config.augment)
    validate_analysis(config.analysis)
    _validate_wrn(config.wrn)


def _validate_ensemble(config: ml_collections.ConfigDict) -> None:
    _positive("ensemble", config.ensemble)
    _choice("ensemble_key", config.ensemble_key, ENSEMBLE_KEYS)
    values = tuple(config.ensemble_values)
    if values and len(values) != config.ensemble:
        raise ConfigError(f"ensemble_values has {len(values)} values for ensemble={config.ensemble} members.")
    if config.ensemble > 1 and not values and config.ensemble_key != "seed":
        raise ConfigError(f"ensemble_key={config.ensemble_key!r} needs --config.ensemble_values=(v1, v2, ...), "
                          f"one per member.")
    if len(set(values)) != len(values):
        raise ConfigError(f"ensemble_values repeats a value: {values}; each member needs its own.")


def validate_analysis(a: ml_collections.ConfigDict) -> None:
    _choice("analysis.lines", a.lines, ANALYSIS_LINES)
    _choice("analysis.split", a.split, ANALYSIS_SPLITS)
    _choice("analysis.sampling", a.sampling, ANALYSIS_SAMPLINGS)
    _choice("analysis.signal", a.signal, ANALYSIS_SIGNALS)
    _choice("analysis.estimator", a.estimator, ANALYSIS_ESTIMATORS)
    if a.hf_cutoff_unit:
        _choice("analysis.hf_cutoff_unit", a.hf_cutoff_unit, ANALYSIS_CUTOFF_UNITS)
    if not (isinstance(a.num_points, int) and a.num_points >= 8):
        raise ConfigError(f"analysis.num_points must be an integer >= 8, got {a.num_points!r}.")
    for key in ("pairs_per_class", "pairs_per_class_pair", "images_per_class", "chunk_lines", "forward_batch",
                "stack", "direction_seed", "diversity_images"):
        _positive(f"analysis.{key}", a[key], allow_zero=True)
    for key in ("planes", "max_points", "flush_lines"):
        _positive(f"analysis.{key}", a[key])
    if not (isinstance(a.grid, int) and a.grid >= 8):
        raise ConfigError(f"analysis.grid must be an integer >= 8, got {a.grid!r}.")
    for key in ("length", "step"):
        _number_in(f"analysis.{key}", a[key], 0.0, math.inf)
        if a[key] == 0:
            raise ConfigError(f"Config key 'analysis.{key}' must be > 0, got 0.")
    _number_in("analysis.hf_cutoff", a.hf_cutoff, 0.0, math.inf)
    _number_in("analysis.spatial_frequency", a.spatial_frequency, 0.0, math.inf)
    for key in ("centered", "save_logits", "class_diversity"):
        if not isinstance(a[key], bool):
            raise ConfigError(f"Config key 'analysis.{key}' must be true or false, got {a[key]!r}.")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in a.classes):
        raise ConfigError(f"analysis.classes must be class indices >= 0 like (0, 3), got {a.classes!r}.")
    if a.fourier_index and (len(a.fourier_index) != 2 or not all(isinstance(i, int) for i in a.fourier_index)):
        raise ConfigError(f"analysis.fourier_index must be two integers (i, j) or (), got {a.fourier_index!r}.")
    if a.lines == "pairs" and a.pairs_per_class == 0 and a.pairs_per_class_pair == 0:
        raise ConfigError("analysis.pairs_per_class and analysis.pairs_per_class_pair are both 0: no lines.")
    if a.name and (a.name != a.name.strip() or "/" in a.name or a.name.startswith(".")):
        raise ConfigError(f"analysis.name must be a plain folder name, got {a.name!r}.")


def _validate_wrn(w) -> None:
    _positive("wrn.depth", w.depth)
    _positive("wrn.widen_factor", w.widen_factor)
    if (w.depth - 4) % 6 or w.depth < 10:
        raise ConfigError(f"wrn.depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {w.depth}.")


def _validate_noise(n) -> None:
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
        raise ConfigError(f"Config key {key!r} is {value!r};{did_you_mean(value, choices)} "
                          f"valid choices: {', '.join(choices)}.")


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

    def epoch_steps(self, epoch: int) -> int:
        """Steps in 0-based `epoch` (fewer in a partial last epoch)."""
        return self.epoch_end(epoch) - epoch * self.steps_per_epoch


def resolve_schedule(config: ml_collections.ConfigDict, num_train: int) -> Schedule:
    """Steps per epoch drop the leftover examples (docs/methods.md §4); `steps` > 0 overrides `epochs`."""
    steps_per_epoch = num_train // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the training split ({num_train} examples); "
            f"use --config.batch_size={min(num_train, 128)} or smaller."
        )
    total = config.steps if config.get("steps", 0) > 0 else steps_per_epoch * config.epochs
    return Schedule(steps_per_epoch=steps_per_epoch, total_steps=total)


def write_config(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    io.write_json(config_path(workdir), config.to_dict())


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
