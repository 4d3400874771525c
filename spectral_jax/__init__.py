"""spectral-jax: the spectral bias of image classifiers (interpolation spectra, noise fitting)."""

from spectral_jax import parallel as _parallel

_parallel.set_cpu_collective_timeouts()  # before any backend starts: see parallel.CPU_COLLECTIVE_FLAGS

from spectral_jax.api import Run, Spectra, interpolation_spectra, load_run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Run", "Spectra", "interpolation_spectra", "load_run"]
