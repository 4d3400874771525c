"""Directions of lines through an image x (docs/methods.md §2.4, docs/analysis.md "Lines").

Host side: the fixed direction tables (a Fourier basis image, the f and 1/f composites, the
user's own), unit norm in standardized image space. Device side: a seeded Gaussian direction
per line, and the input gradient of the loss at x (the adversarial direction), both unit norm.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.data import fourier
from spectral_jax.data.noise import noise_direction
from spectral_jax.errors import ConfigError


def table_directions(kind: str, point_shape: Sequence[int], *, spatial_frequency: float = 2.0,
                     fourier_index: Sequence[int] = ()) -> np.ndarray:
    """float32 [1, H, W, C]: the unit `fourier` direction (basis image `fourier_index` = (i, j)
    on the fftshifted grid, else the diagonal one of `spatial_frequency`), or the `f` / `1/f` composite."""
    if len(point_shape) != 3:
        raise ConfigError(f"{kind} directions are images: they need inputs [N, H, W, C], got points of shape "
                          f"{tuple(point_shape)}; give your own directions instead.")
    h, w, c = point_shape
    if kind == "fourier" and fourier_index:
        if len(fourier_index) != 2:
            raise ConfigError(f"fourier_index must be (i, j), got {tuple(fourier_index)!r}.")
        i, j = (int(v) for v in fourier_index)
        if not (0 <= i < h and 0 <= j < w):
            raise ConfigError(f"fourier_index ({i}, {j}) is outside the {h}x{w} frequency grid "
                              f"(fftshifted: ({h // 2}, {w // 2}) is DC).")
        d = fourier.unit_direction(fourier.fourier_basis_image(i, j, h, w, c))
    elif kind in ("fourier", "f", "1/f"):
        if spatial_frequency < 0:
            raise ConfigError(f"spatial_frequency must be >= 0, got {spatial_frequency}.")
        d = noise_direction(kind, (h, w, c), spatial_frequency=spatial_frequency)
    else:
        raise ConfigError(f"{kind!r} is not a fixed direction; fixed directions: fourier, f, 1/f.")
    return np.asarray(d, np.float32)[None]


def custom_directions(directions: Any, point_shape: Sequence[int], num_lines: int) -> np.ndarray:
    """The user's directions [*S] (one for every line) or [P, *S] (one per line), made unit norm."""
    d = np.asarray(directions, np.float32)
    shape = tuple(point_shape)
    if d.shape == shape:
        d = d[None]
    if d.shape[1:] != shape or d.shape[0] not in (1, num_lines):
        raise ConfigError(f"directions must have shape {shape} or ({num_lines}, {', '.join(map(str, shape))}) "
                          f"like the images, got {d.shape}.")
    norms = np.linalg.norm(d.reshape(len(d), -1), axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ConfigError("directions must be finite and non-zero.")
    return d / norms.reshape((-1,) + (1,) * len(shape))


def unit_rows(v: jax.Array) -> jax.Array:
    """Each row [C, *S] scaled to unit norm; a zero row stays zero."""
    norm = jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=1).reshape((-1,) + (1,) * (v.ndim - 1))
    return v / jnp.where(norm > 0, norm, 1.0)


def random_directions(seed: int, line_ids: jax.Array, point_shape: Sequence[int]) -> jax.Array:
    """Unit Gaussian directions [C, *S]: line i's comes from fold_in(key(seed), i), so it does
    not depend on how lines are chunked or sharded."""
    base = jax.random.key(seed)
    draw = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(base, i), tuple(point_shape), jnp.float32))
    return unit_rows(draw(line_ids))


def gradient_directions(apply_fn: Callable, variables, x: jax.Array, classes: jax.Array) -> jax.Array:
    """Unit input gradients [C, *S] of the cross-entropy at x [C, *S] for the line's class
    (the class predicted at x where `classes` is -1). A zero gradient gives a zero direction.

    The logit gradient p - e_y is formed without cancellation: for a confident model, 1 - p_y
    below float32 resolution would make it round-off (p_y rounds to 1 at margins of ~17).
    `confident_cotangent` gives it up to a positive factor per row, which the unit norm drops,
    and `jax.vjp` pulls it back through `apply_fn`."""
    logits, pullback = jax.vjp(lambda xs: apply_fn(variables, xs), x)
    target = jnp.where(classes >= 0, classes, jnp.argmax(logits, axis=-1))
    (grad,) = pullback(confident_cotangent(logits, target).astype(logits.dtype))
    return unit_rows(grad)


def confident_cotangent(logits: jax.Array, target: jax.Array) -> jax.Array:
    """d CE / d logits = p - e_y [C, K] up to a positive factor per row, in float32 without
    cancellation or underflow: exp(z_j - m) for j != y, m = max_{j != y} z_j, and at y minus
    their sum (never 1 - p_y). Zero where no other class has a finite logit."""
    z = logits.astype(jnp.float32)
    other = jnp.arange(z.shape[-1]) != target[:, None]
    m = jnp.max(jnp.where(other, z, -jnp.inf), axis=-1, keepdims=True)
    e = jnp.where(other, jnp.exp(z - jnp.where(jnp.isfinite(m), m, 0.0)), 0.0)
    return jnp.where(other, e, -jnp.sum(e, axis=-1, keepdims=True))
