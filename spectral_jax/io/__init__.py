"""The file layer of a run directory (docs/run_directory.md), at the bottom of the import graph.

- `atomic`: durable atomic writes (temporary name, fsync, rename, fsync of the folder);
- `checked`: reads that turn a damaged file into one `DamagedFile` error with the way out;
- `lock`: one owner per run directory and role (train, analyze, report);
- `faults`: the fault points the crash-consistency tests arm through SPECTRAL_JAX_FAULT.
"""

from spectral_jax.io.atomic import (atomic_path, fsync_dir, fsync_file, fsync_tree, is_out_of_space,
                                    remove_stale_temps, savez, write_json, write_jsonl, write_text)
from spectral_jax.io.checked import load_npz, parse_jsonl, read_csv, read_json, read_jsonl, read_text
from spectral_jax.io.faults import FAULT_ENV, fault_point
from spectral_jax.io.lock import LOCK_SUFFIX, RunLock, lock_path, read_owner

__all__ = [
    "atomic_path", "fsync_dir", "fsync_file", "fsync_tree", "is_out_of_space", "remove_stale_temps", "savez",
    "write_json", "write_jsonl", "write_text", "load_npz", "parse_jsonl", "read_csv", "read_json", "read_jsonl",
    "read_text", "FAULT_ENV", "fault_point", "LOCK_SUFFIX", "RunLock", "lock_path", "read_owner",
]
