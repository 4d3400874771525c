"""Image-frequency tools (docs/methods.md §2.4): Fourier basis images, the diagonal
spatial-frequency mapping, and the "f" / "1/f" composite images.

Everything here is a small deterministic host-side constant (numpy, float64), built once per
image shape and handed to jitted code as an array. Frequencies index an *fftshifted* H×W grid:
position (H//2, W//2) is DC, and (i, j) is the spatial frequency k = (i - H//2, j - W//2).
"""

from __future__ import annotations

import math

import numpy as np

COMPOSITE_KINDS = ("f", "1/f", "uniform")


def symmetric_position(shape: tuple[int, int], pos: tuple[int, int]) -> tuple[int, int]:
    """The conjugate-symmetric partner of `pos` on an fftshifted grid of `shape` (H, W).

    Even sizes: (n - p) mod n (index 0 is Nyquist and is its own partner); odd sizes: n - 1 - p.
    """
    return tuple(int((n - p) % n) if n % 2 == 0 else int(n - 1 - p) for n, p in zip(shape, pos))


def is_self_symmetric(shape: tuple[int, int], pos: tuple[int, int]) -> bool:
    return symmetric_position(shape, pos) == tuple(pos)


def fourier_basis_image(i: int, j: int, height: int = 32, width: int = 32, channels: int = 3) -> np.ndarray:
    """B(i, j): float64 [H, W, C], the real pattern of spatial frequency (i, j), same in every channel.

    The coefficient (1+i)/2 at (i, j) and (1-i)/2 at its partner (or 1 at a self-symmetric
    position) give the pattern (cos θ - sin θ)/sqrt(HW) with θ = 2π(k1·n1/H + k2·n2/W), so each
    channel has unit L2 norm and ‖B‖₂ = sqrt(C) (√3 for RGB).
    """
    if not (0 <= i < height and 0 <= j < width):
        raise ValueError(f"(i, j) = ({i}, {j}) is outside the {height}x{width} frequency grid.")
    coeffs = np.zeros((height, width), np.complex128)
    partner = symmetric_position((height, width), (i, j))
    if partner == (i, j):
        coeffs[i, j] = 1.0
    else:
        coeffs[i, j] = 0.5 + 0.5j
        coeffs[partner] = 0.5 - 0.5j
    return _pattern_from_shifted_coeffs(coeffs, channels)


def spatial_frequency_index(spatial_frequency: float, height: int = 32, width: int = 32) -> tuple[int, int]:
    """The diagonal position (H//2 + m, W//2 + m), m = ⌊s/√2⌋, capped at the grid's last index.

    The direction is always diagonal, so its true radial frequency is m·√2, not s
    (docs/methods.md §2.4, §8 item 5): 2.0 -> (17, 17), 8 -> (21, 21), 16 -> (27, 27) on 32×32.
    """
    if spatial_frequency < 0:
        raise ValueError(f"spatial_frequency must be >= 0, got {spatial_frequency}.")
    m = int(spatial_frequency / math.sqrt(2.0))  # same float expression as the reference: int(1·s/√2)
    return min(height - 1, height // 2 + m), min(width - 1, width // 2 + m)


def squared_radial_frequency(height: int = 32, width: int = 32) -> np.ndarray:
    """q(i, j) = max(1, (i - H//2)² + (j - W//2)²): float64 [H, W], the composites' weight base."""
    ki = np.arange(height)[:, None] - height // 2
    kj = np.arange(width)[None, :] - width // 2
    return np.maximum(1, ki**2 + kj**2).astype(np.float64)


def fourier_composite_image(kind: str, height: int = 32, width: int = 32, channels: int = 3) -> np.ndarray:
    """Σ_{i,j} w(i,j)·B(i,j) over the whole grid: float64 [H, W, C], not normalized.

    w = 1/q for "1/f", q for "f", 1 for "uniform" (q = squared radial frequency), so the power
    spectrum goes as |k|^-4, |k|^+4 and flat. The weights are symmetric under (i,j) -> partner,
    so the sum collapses to one inverse FFT of the weight grid itself.
    Raw norms on 32×32×3: "1/f" ≈ 4.59, "f" ≈ 1.12e4, "uniform" = √3072.
    """
    q = squared_radial_frequency(height, width)
    weights = {"f": q, "1/f": 1.0 / q, "uniform": np.ones_like(q)}
    if kind not in weights:
        raise ValueError(f"Unknown composite kind {kind!r}; valid kinds: {', '.join(COMPOSITE_KINDS)}.")
    return _pattern_from_shifted_coeffs(weights[kind].astype(np.complex128), channels)


def unit_direction(image: np.ndarray) -> np.ndarray:
    """`image / ‖image‖₂` (flattened norm): a direction in standardized-image space."""
    norm = np.linalg.norm(np.ravel(image))
    if norm == 0:
        raise ValueError("Cannot normalize an all-zero image.")
    return image / norm


def _pattern_from_shifted_coeffs(coeffs: np.ndarray, channels: int) -> np.ndarray:
    height, width = coeffs.shape
    pattern = math.sqrt(height * width) * np.real(np.fft.ifft2(np.fft.ifftshift(coeffs)))
    return np.repeat(pattern[:, :, None], channels, axis=2)
