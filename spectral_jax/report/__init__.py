"""Reports: figures and a summary from a run's saved results (nothing is recomputed)."""

from spectral_jax.report.figures import write_report

__all__ = ["write_report"]
