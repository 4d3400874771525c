"""The experiment configs, one file each (`get_config(arg)`): installed with spectral-jax as
`spectral_jax.configs`, so `--config=configs/FILE.py` works from any directory."""
