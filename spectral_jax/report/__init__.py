"""Reports: figures and a summary from a run's saved results (nothing is recomputed)."""

from spectral_jax.report.run_report import write_report

__all__ = ["write_report"]
