"""Interpolation spectra: lines, on-device evaluation, statistics, planes, checkpoint series.

The evaluator needs only a pure `apply_fn(variables, images) -> logits` and arrays, so it also
works on models that were never trained with spectral-jax (see `spectral_jax.interpolation_spectra`).
"""

from spectral_jax.spectral.evaluate import LineEvaluator
from spectral_jax.spectral.lines import KINDS, Lines, direction_lines, pair_lines, select_lines
from spectral_jax.spectral.spectrum import line_points, line_statistics

__all__ = ["KINDS", "LineEvaluator", "Lines", "direction_lines", "pair_lines", "select_lines", "line_points",
           "line_statistics"]
