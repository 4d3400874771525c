"""Data-parallel training on a busy machine: 2 fake CPU devices (and 2 processes) beside
CPU-hogging processes.

XLA:CPU (jaxlib 0.10.2) deadlocks when the host dispatches more than ~32 multi-device programs
ahead of the devices: one device's part of a step never starts and the other waits in the
gradient all-reduce until XLA aborts the process ("Termination timeout ... Expected 2 threads to
join the rendezvous, but only 1 of them arrived"). The training loops bound how far they run
ahead (`parallel.max_steps_ahead`). Busy CPUs make the devices slow next to the host, so the host
gets far ahead: without the bound this run aborted in about half the tries beside 3-4 hogs.

The XLA timeouts are set here so that a deadlock fails the test in seconds, not minutes: the
terminate timeout (20 s) is far above any wait a slow but healthy run showed (no collective of a
healthy run waited as long as 1 s, even at load average 15), and a collective waiting longer than
2 s is logged.
"""

import subprocess
import sys
import time

import pytest

HOGS = 3
# noise fitting on (so the whole training set is evaluated every epoch), a checkpoint every
# epoch (the demo config), epochs of 89 steps: many steps for the host to run ahead of (without
# the bound, the deadlock came within the first epoch).
ARGS = ["--config.epochs=1", "--config.batch_size=16", "--config.eval_batch_size=64",
        "--config.noise.type=radial", "--config.noise.frequency=0.5", "--config.noise.amplitude=0.5"]
XLA_TIMEOUTS = ("--xla_cpu_collective_call_terminate_timeout_seconds=20 "
                "--xla_cpu_collective_call_warn_stuck_timeout_seconds=2")
ABORT = "Termination timeout"


@pytest.fixture
def cpu_hogs():
    """HOGS busy-looping processes for the duration of the test (always killed)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def start(workers, workdir, out, devices, extra=(), args=ARGS):
    return workers.start(workdir, out, extra, devices=devices, base_args=args, xla_flags=XLA_TIMEOUTS)


def finish(workers, proc):
    out = workers.finish(proc, timeout=180)  # a deadlock aborts the worker: a non-zero exit, shown
    assert ABORT not in out


def test_two_devices_train_beside_cpu_hogs(tmp_path, cpu_hogs, workers):
    t0 = time.perf_counter()
    finish(workers, start(workers, tmp_path / "run", tmp_path / "p.npz", devices=2))
    _, devices, step = workers.params(tmp_path / "p.npz")
    assert devices == 2 and step == 89
    print(f"2 devices beside {HOGS} hogs: {time.perf_counter() - t0:.1f}s")


def test_two_processes_train_beside_cpu_hogs(tmp_path, cpu_hogs, workers):
    port = workers.free_port()
    t0 = time.perf_counter()
    procs = [start(workers, tmp_path / "run", tmp_path / f"p{i}.npz", devices=1,
                   extra=["--coordinator", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)])
             for i in range(2)]
    for p in procs:
        finish(workers, p)
    (p0, d0, s0), (p1, d1, s1) = workers.params(tmp_path / "p0.npz"), workers.params(tmp_path / "p1.npz")
    assert d0 == d1 == 2 and s0 == s1 == 89
    assert p0.keys() == p1.keys() and all((p0[k] == p1[k]).all() for k in p0)  # the processes agree exactly
    print(f"2 processes beside {HOGS} hogs: {time.perf_counter() - t0:.1f}s")
