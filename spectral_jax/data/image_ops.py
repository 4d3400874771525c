"""AutoAugment / RandAugment image ops in jax.numpy, with the semantics of the PIL calls the
reference makes (docs/methods.md §5), for one image at a time (vmap over a batch).

An image is `(pixels, valid)`: pixels float32 [H, W, C] holding integers 0..255 (C = 3, or 1
for grayscale), and valid float32 [H, W] standing for PIL's alpha channel. Geometric ops and
the policy's Cutout leave invalid pixels (alpha 0); ops the reference runs through
`convert("RGB")` (AutoContrast, Equalize, Invert, Posterize, Solarize) make every pixel valid
again, with whatever colour it holds; the enhance ops keep alpha. When the policy ends, invalid
pixels become 0 in standardized space (the mean colour), as in the reference's unwrap.

Each op takes its PIL parameter (degrees, shear, pixels, bits, threshold, enhance factor).
`level_to_param` maps the 0..10 policy level to it; amounts in pixels are defined for 32×32
images and scale with the image side. `apply_op` picks an op by index (`OPS`) so a policy can
choose per example under jit.
"""

from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp

MAX_LEVEL = 10.0
REFERENCE_SIDE = 32.0  # the reference's pixel amounts (translate 10, cutout 20) are for 32×32
CUTOUT_FILL = (125.0, 122.0, 113.0)  # the reference's fill colour (with alpha 0)


# --------------------------------------------------------------------------------------
# Helpers


def _blend(degenerate: jax.Array, pixels: jax.Array, factor) -> jax.Array:
    """PIL Image.blend(degenerate, image, factor): clipped to 0..255, truncated to an integer."""
    return jnp.floor(jnp.clip(degenerate + factor * (pixels - degenerate), 0.0, 255.0))


def grayscale(pixels: jax.Array) -> jax.Array:
    """PIL convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, as [H, W, 1]."""
    if pixels.shape[-1] == 1:
        return pixels
    if pixels.shape[-1] != 3:
        return jnp.floor(pixels.mean(-1, keepdims=True) + 0.5)
    rgb = pixels.astype(jnp.int32)
    weights = jnp.array([19595, 38470, 7471], jnp.int32)
    return ((jnp.sum(rgb * weights, -1, keepdims=True) + 32768) >> 16).astype(pixels.dtype)


def _histogram(channel: jax.Array) -> jax.Array:
    """int32 [256] counts of one channel's integer values."""
    return jnp.zeros(256, jnp.int32).at[channel.reshape(-1).astype(jnp.int32)].add(1)


def _per_channel_lut(pixels: jax.Array, lut_fn) -> jax.Array:
    """Applies lut_fn(histogram [256]) -> lut [256] to each channel (PIL's per-band point())."""
    channels = jnp.moveaxis(pixels, -1, 0)

    def one(channel):
        lut = lut_fn(_histogram(channel))
        return lut[channel.astype(jnp.int32)].astype(pixels.dtype)

    return jnp.moveaxis(jax.vmap(one)(channels), 0, -1)


def affine_nearest(pixels: jax.Array, valid: jax.Array, matrix) -> tuple[jax.Array, jax.Array]:
    """PIL transform(AFFINE, (a, b, c, d, e, f)) with NEAREST: output pixel (x, y) reads input
    (floor(a(x+½) + b(y+½) + c), floor(d(x+½) + e(y+½) + f)); outside the image it is 0, alpha 0."""
    a, b, c, d, e, f = matrix
    h, w = valid.shape
    y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                        indexing="ij")
    xs = jnp.floor(a * x + b * y + c).astype(jnp.int32)
    ys = jnp.floor(d * x + e * y + f).astype(jnp.int32)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    xs, ys = jnp.clip(xs, 0, w - 1), jnp.clip(ys, 0, h - 1)
    out = jnp.where(inside[..., None], pixels[ys, xs], 0.0)
    return out, jnp.where(inside, valid[ys, xs], 0.0)


# --------------------------------------------------------------------------------------
# The ops, with PIL parameters. Each returns (pixels, valid).


def identity(pixels, valid):
    return pixels, valid


def auto_contrast(pixels, valid):
    """ImageOps.autocontrast: per channel, stretch [min, max] to [0, 255] (unchanged if flat)."""

    def lut_fn(hist):
        present = hist > 0
        levels = jnp.arange(256, dtype=jnp.int32)
        lo = jnp.min(jnp.where(present, levels, 255))
        hi = jnp.max(jnp.where(present, levels, 0))
        # Integer floor of (i - lo)·255/(hi - lo): float division lands just below 255 at i = hi.
        stretched = jnp.clip((levels - lo) * 255 // jnp.maximum(hi - lo, 1), 0, 255)
        return jnp.where(hi > lo, stretched, levels).astype(jnp.float32)

    return _per_channel_lut(pixels, lut_fn), jnp.ones_like(valid)


def equalize(pixels, valid):
    """ImageOps.equalize: per channel, lut[i] = (step//2 + Σ_{j<i} h[j]) // step with
    step = (N - h[last nonzero]) // 255; unchanged when step is 0 or only one value occurs."""

    def lut_fn(hist):
        levels = jnp.arange(256, dtype=jnp.int32)
        last = jnp.max(jnp.where(hist > 0, levels, 0))
        step = (jnp.sum(hist) - hist[last]) // 255
        cumulative = jnp.cumsum(hist) - hist  # Σ_{j<i} h[j]
        lut = jnp.minimum((step // 2 + cumulative) // jnp.maximum(step, 1), 255)
        flat = (jnp.sum(hist > 0) <= 1) | (step == 0)
        return jnp.where(flat, levels, lut).astype(jnp.float32)

    return _per_channel_lut(pixels, lut_fn), jnp.ones_like(valid)


def invert(pixels, valid):
    return 255.0 - pixels, jnp.ones_like(valid)


def posterize(pixels, valid, bits):
    """Keep the top `bits` bits (0..8) of each value."""
    shift = 8 - jnp.asarray(bits, jnp.int32)
    return ((pixels.astype(jnp.int32) >> shift) << shift).astype(pixels.dtype), jnp.ones_like(valid)


def solarize(pixels, valid, threshold):
    """Values >= threshold are inverted (threshold 256 changes nothing)."""
    return jnp.where(pixels < threshold, pixels, 255.0 - pixels), jnp.ones_like(valid)


def color(pixels, valid, factor):
    """ImageEnhance.Color: blend with the grayscale image (factor 1 = unchanged)."""
    return _blend(jnp.broadcast_to(grayscale(pixels), pixels.shape), pixels, factor), valid


def contrast(pixels, valid, factor):
    """ImageEnhance.Contrast: blend with the mean gray level, rounded (factor 1 = unchanged)."""
    mean = jnp.floor(jnp.mean(grayscale(pixels)) + 0.5)
    return _blend(jnp.full_like(pixels, mean), pixels, factor), valid


def brightness(pixels, valid, factor):
    """ImageEnhance.Brightness: blend with black (factor 1 = unchanged)."""
    return _blend(jnp.zeros_like(pixels), pixels, factor), valid


def sharpness(pixels, valid, factor):
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image ([[1,1,1],[1,5,1],[1,1,1]]/13,
    border pixels kept), so factor > 1 sharpens (factor 1 = unchanged)."""
    h, w = valid.shape
    # Nine shifted slices rather than a grouped convolution: far cheaper for 3×3 on small images.
    window = sum(pixels[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3))
    smooth = jnp.floor((window + 4.0 * pixels[1:-1, 1:-1]) / 13.0 + 0.5)
    degenerate = pixels.at[1:-1, 1:-1].set(smooth)
    return _blend(degenerate, pixels, factor), valid


def rotate(pixels, valid, degrees):
    """Image.rotate(degrees): counter-clockwise about the centre (w/2, h/2), NEAREST."""
    h, w = valid.shape
    theta = jnp.deg2rad(degrees)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    cx, cy = w / 2.0, h / 2.0
    # Inverse map (output -> input) of a counter-clockwise rotation in image coordinates (y down).
    matrix = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    return affine_nearest(pixels, valid, matrix)


def shear_x(pixels, valid, shear):
    return affine_nearest(pixels, valid, (1.0, shear, 0.0, 0.0, 1.0, 0.0))


def shear_y(pixels, valid, shear):
    return affine_nearest(pixels, valid, (1.0, 0.0, 0.0, shear, 1.0, 0.0))


def translate_x(pixels, valid, offset):
    """Output column x reads input column x + offset (so content moves left for offset > 0)."""
    return affine_nearest(pixels, valid, (1.0, 0.0, offset, 0.0, 1.0, 0.0))


def translate_y(pixels, valid, offset):
    return affine_nearest(pixels, valid, (1.0, 0.0, 0.0, 0.0, 1.0, offset))


def policy_cutout(pixels, valid, size, center):
    """The policy's Cutout: rows/cols [c - size//2, c + size//2) clipped, filled with the reference
    colour at alpha 0 (so it ends as the mean colour); size 0 changes nothing."""
    h, w = valid.shape
    half = jnp.asarray(size, jnp.int32) // 2
    rows, cols = jnp.arange(h), jnp.arange(w)
    box = (((rows >= center[0] - half) & (rows < center[0] + half))[:, None]
           & ((cols >= center[1] - half) & (cols < center[1] + half))[None, :])
    fill = jnp.asarray(CUTOUT_FILL[: pixels.shape[-1]] if pixels.shape[-1] <= 3 else CUTOUT_FILL[:1], pixels.dtype)
    return jnp.where(box[..., None], fill, pixels), jnp.where(box, 0.0, valid)


def flip_left_right(pixels, valid):
    return pix.flip_left_right(pixels), valid[:, ::-1]


def flip_up_down(pixels, valid):
    return pix.flip_up_down(pixels), valid[::-1]


# --------------------------------------------------------------------------------------
# Levels -> parameters, and dispatch by op name or index.


# name -> (op, takes a level-derived parameter, the reference draws the parameter's sign w.p. ½)
_OPS = {
    "Identity": (identity, False, False),
    "AutoContrast": (auto_contrast, False, False),
    "Equalize": (equalize, False, False),
    "Invert": (invert, False, False),
    "Rotate": (rotate, True, True),
    "Posterize": (posterize, True, False),
    "Solarize": (solarize, True, False),
    "Color": (color, True, False),
    "Contrast": (contrast, True, False),
    "Brightness": (brightness, True, False),
    "Sharpness": (sharpness, True, False),
    "ShearX": (shear_x, True, True),
    "ShearY": (shear_y, True, True),
    "TranslateX": (translate_x, True, True),
    "TranslateY": (translate_y, True, True),
    "Cutout": (policy_cutout, True, False),
    "FlipLR": (flip_left_right, False, False),
    "FlipUD": (flip_up_down, False, False),
}
OPS: tuple[str, ...] = tuple(_OPS)


def level_to_param(name: str, level, side: int = 32) -> jax.Array:
    """The PIL parameter the reference uses for op `name` at `level` (0..10), before its sign:
    degrees ⌊3L⌋, shear 0.03·L, translate ⌊L⌋ px, posterize 4 - ⌊0.4L⌋ bits, solarize threshold
    256 - ⌊25.6L⌋, enhance factor 0.1 + 0.18·L, cutout ⌊2L⌋ px; pixel amounts scale with side/32."""
    level = jnp.asarray(level, jnp.float32)
    scale = side / REFERENCE_SIDE

    def floor_of(maxval):  # the reference's int_parameter: int(level * maxval / 10)
        return jnp.floor(level * maxval / MAX_LEVEL)

    mapping = {
        "Rotate": lambda: floor_of(30.0),
        "Posterize": lambda: 4 - floor_of(4.0),
        "Solarize": lambda: 256 - floor_of(256.0),
        "ShearX": lambda: level * 0.3 / MAX_LEVEL,
        "ShearY": lambda: level * 0.3 / MAX_LEVEL,
        "TranslateX": lambda: floor_of(10.0 * scale),
        "TranslateY": lambda: floor_of(10.0 * scale),
        "Cutout": lambda: floor_of(20.0 * scale),
        **{n: (lambda: level * 1.8 / MAX_LEVEL + 0.1) for n in ("Color", "Contrast", "Brightness", "Sharpness")},
    }
    if name not in mapping:
        raise ValueError(f"Op {name!r} takes no parameter; ops with one: {', '.join(mapping)}.")
    return mapping[name]()


def run_op(name: str, pixels, valid, level, key):
    """Op `name` at `level`, as the reference's transform: the parameter from the level, a random
    sign for geometric ops, a random centre for Cutout (all drawn from `key`)."""
    fn, takes_param, signed = _OPS[name]
    if not takes_param:
        return fn(pixels, valid)
    param = level_to_param(name, level, max(valid.shape))
    if name == "Cutout":
        return fn(pixels, valid, param, jax.random.randint(key, (2,), 0, jnp.array(valid.shape)))
    if signed:
        param = jnp.where(jax.random.bernoulli(key), param, -param)
    return fn(pixels, valid, param)


def op_index(name: str, names: tuple[str, ...] = OPS) -> int:
    if name not in names:
        raise ValueError(f"Unknown image op {name!r}; valid ops: {', '.join(names)}.")
    return names.index(name)


def apply_op(index, pixels, valid, level, key, names: tuple[str, ...] = OPS):
    """Op `names[index]` at `level`; `index` may be traced (one lax.switch branch per name)."""
    branches = [lambda p, v, lv, k, n=n: run_op(n, p, v, lv, k) for n in names]
    return jax.lax.switch(index, branches, pixels, valid, jnp.asarray(level, jnp.float32), key)
