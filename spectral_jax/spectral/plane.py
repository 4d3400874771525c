"""2-D maps (beyond the paper): the network on a G x G grid of the plane through three images,
the 2-D power spectrum of its output field and its radial profile (docs/analysis.md "Planes").

The plane through x_a, x_b, x_c gets orthonormal axes (Gram-Schmidt: e1 along x_b - x_a, e2
along the rest of x_c - x_a), so grid distances are standardized input distances and the
spectrum is isotropic. The grid is a square around the three images (their bounding box
widened by MARGIN on each side), G points a side, evaluated as G row lines by the line
evaluator. The field is the signal's quantity at each point (all class probabilities for
prob_distance, the logit of the class of x_a for class_logit, the probability of the class
predicted at x_a for predicted_prob); the least-squares plane a + b u + c v is subtracted
(the 2-D form of detrending), then

    power2d[ku, kv] = sum over field channels |fftshift(fft2(field))|^2   [G, G]
    radial[rho]     = mean of power2d over the ring round(|k|) = rho, rho = 0..G//2
    hf_power        = sum_{|k| >= G/8} power2d / G^4

with |k| in cycles per grid side (divide by `side` for cycles per unit).
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp

from spectral_jax.errors import ConfigError
from spectral_jax.spectral.lines import KINDS, Lines, class_indices

MARGIN = 0.2  # share of the images' extent added on each side of the grid
PLANE = KINDS.index("plane")


def plane_triples(labels: np.ndarray, planes: int, classes=None) -> np.ndarray:
    """int [P, 3]: plane p goes through image floor(p / K) of classes p, p+1, p+2 (mod K), K
    the number of classes, so planes cycle through class triples before reusing a class."""
    by_class = list(class_indices(labels, classes).values())
    k = len(by_class)
    if k < 3:
        raise ConfigError(f"Planes go through images of three classes; the split has {k}.")
    out = []
    for p in range(planes):
        rank = p // k
        members = [by_class[(p + i) % k] for i in range(3)]
        if any(rank >= len(m) for m in members):
            raise ConfigError(f"Too few images for {planes} planes (plane {p} needs image {rank} of three classes).")
        out.append([m[rank] for m in members])
    return np.asarray(out, np.int32)


def plane_frames(images: np.ndarray, grid: int) -> dict[str, np.ndarray]:
    """Row lines of the grids through triples of standardized images [P, 3, *S].

    Returns `x0`, `x1` [P*G, *S] (row r of plane p at index p*G + r), `coords` [P, 3, 2] (the
    three images in plane coordinates, standardized units), `extent` [P, 4] (u0, u1, v0, v1)
    and `side` [P] (the grid's side length)."""
    x = np.asarray(images, np.float64)
    p = x.shape[0]
    flat = x.reshape(p, 3, -1)
    ab, ac = flat[:, 1] - flat[:, 0], flat[:, 2] - flat[:, 0]
    nab = np.linalg.norm(ab, axis=1)
    e1 = ab / np.where(nab > 0, nab, 1)[:, None]
    cu = (ac * e1).sum(1)
    rest = ac - cu[:, None] * e1
    cv = np.linalg.norm(rest, axis=1)
    if np.any(nab == 0) or np.any(cv <= 1e-6 * np.maximum(nab, 1)):
        raise ConfigError("A plane's three images are collinear (or two are equal): no plane goes through them.")
    e2 = rest / cv[:, None]
    coords = np.stack([np.zeros((p, 2)), np.stack([nab, np.zeros(p)], 1), np.stack([cu, cv], 1)], axis=1)
    lo, hi = coords.min(1), coords.max(1)
    side = (hi - lo).max(1) * (1 + 2 * MARGIN)
    center = (lo + hi) / 2
    u0, v0 = center[:, 0] - side / 2, center[:, 1] - side / 2
    v = v0[:, None] + side[:, None] * np.arange(grid)[None] / (grid - 1)  # [P, G]
    origin = flat[:, 0][:, None] + v[..., None] * e2[:, None]  # [P, G, D]
    x0 = origin + u0[:, None, None] * e1[:, None]
    x1 = origin + (u0 + side)[:, None, None] * e1[:, None]
    shape = x.shape[2:]
    return {
        "x0": x0.reshape((p * grid,) + shape).astype(np.float32),
        "x1": x1.reshape((p * grid,) + shape).astype(np.float32),
        "coords": coords.astype(np.float32),
        "extent": np.stack([u0, u0 + side, v0, v0 + side], 1).astype(np.float32),
        "side": side.astype(np.float32),
    }


def plane_lines(num_planes: int, grid: int, labels: np.ndarray | None = None) -> Lines:
    """The G row lines of each plane, as pair lines of the table [x0; x1] from `plane_frames`;
    `labels` [P] (class of x_a) is each row's class for the class-based signals."""
    rows = num_planes * grid
    cls = np.full(rows, -1, np.int32) if labels is None else np.repeat(np.asarray(labels, np.int32), grid)
    return Lines(start=np.arange(rows, dtype=np.int32), target=np.arange(rows, 2 * rows, dtype=np.int32),
                 lo=np.zeros(rows, np.float32), hi=np.ones(rows, np.float32), kind=np.full(rows, PLANE, np.int8),
                 labels=np.stack([cls, np.full(rows, -1, np.int32)], 1), vector="pair")


def plane_field(logits: jax.Array, signal: str, classes: jax.Array, predicted: jax.Array) -> jax.Array:
    """The field [..., G, G, F] of logits [..., G, G, K] (see the module docstring)."""
    if signal == "prob_distance":
        return jax.nn.softmax(logits, axis=-1)
    if signal == "class_logit":
        c, values = jnp.where(classes >= 0, classes, predicted), logits
    else:
        c, values = predicted, jax.nn.softmax(logits, axis=-1)
    idx = jnp.broadcast_to(c[..., None, None, None], values.shape[:-1] + (1,))
    return jnp.take_along_axis(values, idx, axis=-1)


def plane_statistics(field: jax.Array) -> dict[str, jax.Array]:
    """`power2d` [..., G, G], `radial` [..., G//2+1] and `hf_power` [...] of fields [..., G, G, F]."""
    g = field.shape[-2]
    coord = jnp.arange(g, dtype=jnp.float32) - (g - 1) / 2
    u, v = coord[:, None, None], coord[None, :, None]
    mean = field.mean(axis=(-3, -2), keepdims=True)
    slope_u = (field * u).sum(axis=(-3, -2), keepdims=True) / (g * (coord**2).sum())
    slope_v = (field * v).sum(axis=(-3, -2), keepdims=True) / (g * (coord**2).sum())
    detrended = field - mean - slope_u * u - slope_v * v
    spec = jnp.fft.fftshift(jnp.fft.fft2(detrended, axes=(-3, -2)), axes=(-3, -2))
    power = jnp.sum(jnp.square(jnp.abs(spec)), axis=-1)  # [..., G, G]
    k = jnp.arange(g) - g // 2
    rho = jnp.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    ring = jnp.round(rho).astype(jnp.int32)
    rings = jnp.arange(g // 2 + 1)
    member = (ring[None] == rings[:, None, None]).astype(jnp.float32)  # [R, G, G]
    radial = jnp.einsum("...ij,rij->...r", power, member) / member.sum(axis=(1, 2))
    hf = jnp.sum(jnp.where(rho >= g / 8, power, 0.0), axis=(-2, -1)) / g**4
    return {"power2d": power, "radial": radial, "hf_power": hf}


def plane_results(logits: np.ndarray, planes: dict[str, np.ndarray], signal: str) -> dict[str, np.ndarray]:
    """Per plane, from the row lines' logits [P*G, G, K]: `power2d`, `radial`, `hf_power`, the
    predicted class map `predicted` [P, G, G] and the grid logits [P, G, G, K] (rows: v; columns: u)."""
    p = len(planes["triples"])
    grid = logits.shape[1]
    z = jnp.asarray(logits, jnp.float32).reshape(p, grid, grid, -1)
    extent, side = planes["extent"], planes["side"]
    # The class predicted at x_a: at the grid point nearest to it (x_a sits at (0, 0) in plane coordinates).
    iu = np.clip(np.round(-extent[:, 0] / side * (grid - 1)).astype(int), 0, grid - 1)
    iv = np.clip(np.round(-extent[:, 2] / side * (grid - 1)).astype(int), 0, grid - 1)
    predicted = jnp.argmax(z[np.arange(p), iv, iu], axis=-1)
    field = plane_field(z, signal, jnp.asarray(planes["labels"][:, 0]), predicted)
    out = {k: np.asarray(v) for k, v in plane_statistics(field).items()}
    out["predicted"] = np.asarray(jnp.argmax(z, axis=-1), np.int16)
    out["logits"] = np.asarray(z)
    return out
