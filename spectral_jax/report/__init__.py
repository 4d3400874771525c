"""Reports: figures and a summary from a run's saved results, and a sweep's results table and
figures from its runs' (nothing is recomputed)."""

from spectral_jax.report.experiments import write_sweep_report
from spectral_jax.report.run_report import write_report

__all__ = ["write_report", "write_sweep_report"]
