"""spectral-jax: the spectral bias of image classifiers (interpolation spectra, noise fitting)."""

__version__ = "0.1.0"
