"""The paper's experiments E1-E9 (docs/methods.md §7), one file each: `get_config(arg)` (full scale
by default, `:cpu` for a laptop, `:smoke` for tests) and `get_sweep(arg)` (the runs), run with
`spectral-jax sweep --config=configs/experiments/FILE.py[:cpu] --root R`; `FIGURE` names the
figure `spectral-jax report --root R` draws."""
