"""Interpolation spectra: line selection, on-device evaluation, statistics, checkpoint series.

Needs only a pure `apply_fn(variables, images) -> logits` and arrays, so it also works on
models that were never trained with spectral-jax.
"""

from spectral_jax.spectral.evaluate import LineEvaluator
from spectral_jax.spectral.lines import Lines, select_lines
from spectral_jax.spectral.spectrum import line_points, line_statistics

__all__ = ["LineEvaluator", "Lines", "select_lines", "line_points", "line_statistics"]
