"""Runs `spectral-jax ARGS` as a forked child of one process that imported the package once (a
multiprocessing fork server), for the kill tests of test_rundir.py.

A child is a real process running `cli.main(ARGS)`: SIGKILL, SIGSTOP and its exit code behave as
for the `spectral-jax` command, and its output goes to a log file. Starting one costs a fork
instead of importing jax, scikit-learn and matplotlib again; compiled programs are shared through
JAX's persistent compilation cache. No jax backend exists before the fork (importing jax starts
none), so each child starts its own.
"""

import os
import signal
import sys

import jax

from spectral_jax import cli, io

# What the fork server imports before it forks (by name, from the installed packages: the fork
# server of Python 3.11 does not get the tests folder on its path): the package and what the
# digits loader imports.
PRELOAD = ["spectral_jax.cli", "sklearn.datasets", "sklearn.model_selection"]


def cli_child(args: list[str], fault: str | None, log: str, cache: str) -> None:
    """The body of a child: `spectral-jax ARGS` with SPECTRAL_JAX_FAULT=`fault`, output to `log`."""
    os.environ.pop(io.FAULT_ENV, None)
    if fault:
        os.environ[io.FAULT_ENV] = fault
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        code = cli.main(args)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)  # the files are closed and flushed by now; skip the interpreter's teardown


def hold_lock(args: list[str], fault, log: str, cache) -> None:
    """Takes the trainer's lock on the folder ARGS[0], then freezes (SIGSTOP) holding it."""
    io.RunLock(args[0], "train").acquire()
    os.kill(os.getpid(), signal.SIGSTOP)
