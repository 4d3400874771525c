"""Checks of an analysis's inputs before any compute (docs/analysis.md "Input checks").

Bad inputs otherwise pass silently (a NaN image gives NaN statistics, labels beyond the
model's classes give NaN `class_logit` signals, logits [K, B] give plausible numbers) or fail
deep inside the compiled evaluator. Each check raises a one-line `ConfigError` saying what
came in and what was expected:

- `image_layout`: images that look NCHW (the analysis takes NHWC);
- `class_labels`: labels are integer classes [N] (one-hot, fractional or negative ones are not);
- `check_inputs`: the images and directions the lines use are finite; `apply_fn` on a probe
  batch of a few of them returns float logits [B, K], K >= 2; the labels are below K; and
  (`batch_check`) the logits of the same images do not depend on the batch they are evaluated
  in, traced the way the evaluator runs them (train-mode BatchNorm or Dropout would make the
  results depend on the forward batch, which is chosen by timing).

The probe is a few images, evaluated once per call (abstractly, with `jax.eval_shape`, unless
`batch_check`): it costs no more than a compile of the forward pass at batch 4 and 8.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.data import standardize
from spectral_jax.errors import ConfigError, one_line
from spectral_jax.spectral.inputs import LineInputs

PROBE = 4  # images in the probe batch
SHOWN = 5  # indices quoted in a message
RTOL = 1e-4  # logits of one image in two batches may differ by RTOL * (1 + max |logit|)
EVAL_MODE = ("call model.eval() before nnx.split (Flax NNX), or apply with train=False / "
             "use_running_average=True and deterministic=True (Linen)")
# Errors of models traced in train mode (Flax NNX, Linen) and words of their messages.
_TRAIN_MODE = ("TraceContextError", "ModifyScopeVariableError", "InvalidRngError", "BatchStat", "batch_stats",
               "dropout", "Dropout")


def image_layout(shape, what: str = "images") -> None:
    """NHWC images or feature vectors; [N, C, H, W] with C in 1, 3, 4 and H, W >= 8 is NCHW."""
    if len(shape) == 4 and shape[1] in (1, 3, 4) and min(shape[2], shape[3]) >= 8:
        raise ConfigError(f"{what} {tuple(shape)} look NCHW [N, C, H, W]; the analysis takes NHWC [N, H, W, C]: pass "
                          f"{what}.transpose(0, 2, 3, 1) (if your model wants NCHW, transpose back in apply_fn: "
                          f"x.transpose(0, 3, 1, 2)).")


def mean_std(mean, std) -> None:
    """Per-channel mean and std: finite, std > 0."""
    if mean is None and std is None:
        return
    if mean is None or std is None:
        raise ConfigError("Give both mean and std (per channel, [0, 1] pixel units), or neither.")
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ConfigError(f"mean and std must be finite with std > 0, got mean {m.tolist()} and std {s.tolist()}.")


def class_labels(labels, n: int, *, unlabeled: bool = False, what: str = "image") -> np.ndarray | None:
    """`labels` as integer classes [n] (None stays None); with `unlabeled`, -1 means no label."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    where = _where(what)
    if labels.dtype.kind not in "biuf":
        raise ConfigError(f"labels must be integer classes [{n}], got dtype {labels.dtype}.")
    if labels.ndim == 2 and labels.shape[0] == n and labels.shape[1] >= 2 \
            and np.all((labels >= -1e-6) & (labels <= 1 + 1e-6)) and np.allclose(labels.sum(1), 1, atol=1e-3):
        raise ConfigError(f"labels {labels.shape} look one-hot (or probabilities): pass labels.argmax(-1), "
                          f"the class of each {what}, shape [{n}].")
    if labels.ndim != 1:
        raise ConfigError(f"labels must be integer classes of shape [{n}] (one per {what}), got shape {labels.shape}.")
    if len(labels) != n:
        raise ConfigError(f"labels must have one entry per {what} ({n}), got {len(labels)}.")
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if len(bad):
            raise ConfigError(f"labels must be integer classes; {len(bad)} are not whole numbers: "
                              f"{_values(labels, bad)} at {_indices(bad, where)}.")
    labels = labels.astype(np.int64)
    bad = np.flatnonzero(labels < (-1 if unlabeled else 0))
    if len(bad):
        allowed = ("-1 (no label) or a class >= 0" if unlabeled
                   else "classes >= 0 (-1, no label, only for the labels of x0)")
        raise ConfigError(f"labels must be {allowed}; got {_values(labels, bad)} at {_indices(bad, where)}.")
    return labels


def check_inputs(apply_fn: Callable, variables: Any, inputs: LineInputs, *, labels: np.ndarray | None = None,
                 labels_of: str = "image", batch_check: bool = True) -> int:
    """Checks `inputs` and `apply_fn` on a probe batch before any compute; returns the classes K.

    `labels`: the user's labels, one per `labels_of` (checked below K; -1 ignored); None checks the lines' labels.
    `batch_check`: also evaluate the probe in two batches (compiles the forward twice, small)."""
    finite_inputs(inputs)
    probe = probe_images(inputs)
    k = output_classes(apply_fn, variables, probe)
    if labels is not None:
        below_classes(labels, k, where=_where(labels_of))
    else:
        below_classes(inputs.lines.labels if inputs.planes is None else inputs.planes["labels"], k, "the lines' labels")
    if batch_check:
        batch_independent(apply_fn, variables, probe, _others(inputs, len(probe)))
    return k


def finite_inputs(inputs: LineInputs) -> None:
    """The image table (float) and the direction table hold only finite values."""
    table = np.asarray(inputs.table)
    if table.dtype.kind in "fc" and len(table):
        bad = np.flatnonzero(~np.all(np.isfinite(table.reshape(len(table), -1)), axis=1))
        if len(bad):
            raise ConfigError(f"{len(bad)} of the {len(table)} inputs the lines use are not finite (NaN or Inf): "
                              f"{_sources(inputs, bad)}. Replace or drop them: a NaN input gives NaN statistics.")
    if inputs.directions is not None:
        d = np.asarray(inputs.directions, np.float32)
        d = d.reshape(1, -1) if d.shape == table.shape[1:] or d.ndim < 2 else d.reshape(len(d), -1)
        bad = np.flatnonzero(~np.all(np.isfinite(d), axis=1))
        if len(bad):
            raise ConfigError(f"{len(bad)} of the {len(d)} directions are not finite (NaN or Inf): rows "
                              f"{_indices(bad, prefix='')}.")


def probe_images(inputs: LineInputs) -> jax.Array:
    """The first PROBE images of the table, standardized the way the evaluator does."""
    return _standardized(inputs, np.asarray(inputs.table[:PROBE]))


def output_classes(apply_fn: Callable, variables: Any, probe: jax.Array) -> int:
    """K, from the abstract output of `apply_fn` on the probe and on one more image."""
    b = len(probe)
    # A new function each call: JAX caches traces per function, and apply_fn may read globals
    # changed since (a graphdef split again in eval mode), as the evaluator's fresh trace would.
    shape_of = lambda v, x: jax.eval_shape(lambda v, x: apply_fn(v, x), v, x)  # noqa: E731
    out = _call(shape_of, variables, probe)
    more = _call(shape_of, variables, jnp.concatenate([probe, probe[:1]]))
    expected = f"expected float logits [{b}, K] with K >= 2 classes"
    got = f"returned {_describe(out)} on a probe batch {_describe(probe)}"
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ConfigError(f"apply_fn must return one array of logits; it {got}; {expected} (return only the logits).")
    shape, hint = out.shape, ""
    if not jnp.issubdtype(out.dtype, jnp.floating):
        hint = " (logits, not predicted classes)"
    elif len(shape) == 1 or shape[-1:] == (1,):
        hint = " (one output per image: for a binary model return jnp.stack([jnp.zeros_like(z), z], -1))"
    elif len(shape) == 2 and (shape[0] != b or getattr(more, "shape", None) != (b + 1, shape[1])):
        hint = (" (logits [K, B]? return logits.T)" if shape[1] == b else
                f" (the first axis must be the batch{_layout_hint(probe.shape)})")
    elif len(shape) > 2:
        hint = (" (outputs per position: pool or flatten them to [B, K])" if shape[0] == b else
                f" (the first axis must be the batch{_layout_hint(probe.shape)})")
    if hint or len(shape) != 2:
        raise ConfigError(f"apply_fn {got}; {expected}{hint}.")
    return int(shape[1])


def below_classes(labels: np.ndarray, k: int, what: str = "labels", where: str = "images ") -> None:
    """Labels (-1: none) must be classes of the model's K outputs."""
    labels = np.asarray(labels)
    bad = np.flatnonzero(labels.ravel() >= k)
    if len(bad):
        at = f" at {_indices(bad, where)}" if labels.ndim == 1 else ""
        raise ConfigError(f"labels must be classes in [0, {k}) for the model's {k} outputs "
                          f"(apply_fn returns [B, {k}]); {what} hold {_values(labels.ravel(), bad)}{at}.")


def batch_independent(apply_fn: Callable, variables: Any, probe: jax.Array, others: jax.Array) -> None:
    """The probe's logits alone, and in reverse order beside `others` inside `jax.lax.map` (as the
    evaluator runs its micro-batches), must agree; they must also be finite."""
    alone = np.asarray(_call(jax.jit(lambda v, x: apply_fn(v, x)), variables, probe), np.float32)  # fresh trace
    if not np.all(np.isfinite(alone)):
        rows = np.flatnonzero(~np.all(np.isfinite(alone), axis=1))
        raise ConfigError(f"apply_fn returns NaN or Inf logits for finite probe images "
                          f"(rows {_indices(rows, prefix='')} of {len(alone)}): check the variables (NaN weights?).")
    mapped = jax.jit(lambda v, x: jax.lax.map(lambda xb: apply_fn(v, xb), x[None])[0])
    batch = jnp.concatenate([probe[::-1], others])
    together = np.asarray(_call(mapped, variables, batch, in_map=True), np.float32)[: len(probe)][::-1]
    diff, scale = float(np.max(np.abs(alone - together))), float(np.max(np.abs(alone)))
    if not diff <= RTOL * (1 + scale):
        raise ConfigError(f"apply_fn's logits depend on the batch they are evaluated in (the same images alone and in "
                          f"another batch differ by up to {diff:.3g}, logits up to {scale:.3g}): a BatchNorm using "
                          f"batch statistics or an active Dropout (train mode)? To evaluate it, {EVAL_MODE}.")


# --------------------------------------------------------------------------------------


def _standardized(inputs: LineInputs, x: np.ndarray) -> jax.Array:
    if inputs.mean is None:
        return jnp.asarray(x, jnp.float32)
    return standardize(jnp.asarray(x), jnp.asarray(inputs.mean, jnp.float32),
                       jnp.asarray(inputs.std, jnp.float32)).astype(jnp.float32)


def _others(inputs: LineInputs, b: int) -> jax.Array:
    """Images to share the probe's second batch: the next ones of the table, else the probe halved."""
    if len(inputs.table) >= 2 * b:
        return _standardized(inputs, np.asarray(inputs.table[b:2 * b]))
    return 0.5 * _standardized(inputs, np.asarray(inputs.table[:b]))


def _call(fn: Callable, variables, x, in_map: bool = False):
    """fn(variables, x) (apply_fn, traced or jitted); any error re-raised as one line with what may cause it."""
    try:
        return fn(variables, x)
    except Exception as e:  # noqa: BLE001: whatever the user's function raises is explained, then chained
        text = f"{type(e).__name__}: {e}"
        train = any(w in text for w in _TRAIN_MODE)
        hint = (f" A model in train mode (BatchNorm with batch statistics, Dropout) fails so: {EVAL_MODE}."
                if train else "")
        where = " when traced inside jax.lax.map, as the analysis runs its forward batches" if in_map else ""
        layout = "" if train else _layout_hint(x.shape)
        raise ConfigError(f"apply_fn(variables, images) fails on a probe batch {_describe(x)} of the analysed "
                          f"images{where}{layout}: {one_line(text, 300)}{hint}") from e


def _where(what: str) -> str:
    return "images " if what == "image" else f"{what} rows "


def _layout_hint(shape) -> str:
    if len(shape) == 4:
        return " (images are passed NHWC [B, H, W, C]; a model that wants NCHW must transpose in apply_fn)"
    return ""


def _describe(out) -> str:
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} ({', '.join(_describe(o) for o in out)})"
    if isinstance(out, dict):
        return f"a dict with keys {', '.join(map(str, list(out)[:5]))}"
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return f"{np.dtype(out.dtype).name}{list(out.shape)}"
    return type(out).__name__


def _sources(inputs: LineInputs, rows: np.ndarray) -> str:
    """What rows of the table were given as: images (indices), x0/x1 rows, or the images of planes."""
    lines = inputs.lines
    if inputs.planes is not None:
        triples = inputs.planes["triples"]
        triples = triples[(rows % len(lines)) // (len(lines) // len(triples))]
        return f"in the planes through {_indices(np.unique(triples))}"
    if lines.vector == "pair" and np.all(inputs.pairs < 0):  # explicit endpoints: x0 then x1
        p = len(lines)
        named = [f"x0[{r}]" if r < p else f"x1[{r - p}]" for r in rows[:SHOWN]]
        return ", ".join(named) + (", ..." if len(rows) > SHOWN else "")
    source = np.full(len(inputs.table), -1)
    source[lines.start] = inputs.pairs[:, 0]
    if lines.vector == "pair":
        source[lines.target] = inputs.pairs[:, 1]
    return _indices(source[rows])


def _indices(idx: np.ndarray, prefix: str = "images ") -> str:
    idx = np.asarray(idx).ravel()
    return prefix + ", ".join(map(str, idx[:SHOWN].tolist())) + (", ..." if len(idx) > SHOWN else "")


def _values(values: np.ndarray, idx: np.ndarray) -> str:
    shown = np.unique(values[idx])
    return ", ".join(f"{v:g}" for v in shown[:SHOWN].tolist()) + (", ..." if len(shown) > SHOWN else "")
