"""Data parallelism: 4 fake CPU devices and 2 local processes give the parameters of 1 device."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

@pytest.fixture(scope="module")
def one_device(tmp_path_factory, workers):
    d = tmp_path_factory.mktemp("one")
    workers.finish(workers.start(d / "run", d / "p.npz"))
    return (*workers.params(d / "p.npz"), d / "run")


def test_four_fake_devices_match_one_device(tmp_path, one_device, workers):
    workers.finish(workers.start(tmp_path / "run", tmp_path / "p.npz", devices=4))
    got, devices, step = workers.params(tmp_path / "p.npz")
    assert devices == 4 and step == 3
    want, want_devices, _, one_run = one_device
    assert want_devices == 1
    workers.assert_same_params(got, want)
    # Checkpoints written on 4 devices restore here, on 1, and analyse like those written on 1.
    from spectral_jax.spectral import series

    stats = {}
    for name, run in (("four", tmp_path / "run"), ("one", one_run)):
        copy = tmp_path / f"analysed_{name}"
        shutil.copytree(run, copy)
        series.analyze_run(copy, quiet=True)
        stats[name] = series.load_step(copy, 3)
    np.testing.assert_allclose(stats["four"]["max_grad"], stats["one"]["max_grad"], rtol=1e-3, atol=1e-6)


def test_two_processes_train_together(tmp_path, one_device, workers):
    port = workers.free_port()
    procs = [workers.start(tmp_path / "run", tmp_path / f"p{i}.npz",
                           ["--coordinator", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)])
             for i in range(2)]
    for p in procs:
        workers.finish(p)
    (p0, d0, s0), (p1, d1, s1) = workers.params(tmp_path / "p0.npz"), workers.params(tmp_path / "p1.npz")
    assert d0 == d1 == 2 and s0 == s1 == 3
    workers.assert_same_params(p0, p1, rtol=0, atol=0)  # the processes agree exactly
    workers.assert_same_params(p0, one_device[0])  # and with one device, up to reduction order
    assert (tmp_path / "run" / "metrics.jsonl").exists()  # written by process 0


ANALYSIS_SCRIPT = """
import jax, numpy as np
from spectral_jax import models
from spectral_jax.config import base_config
from spectral_jax.data import open_dataset
from spectral_jax.spectral import LineEvaluator, direction_lines, select_lines
from spectral_jax import parallel
ds = open_dataset("digits"); test = ds.split("test")
model, variables = models.create_model(base_config(), ds.image_shape, 10, jax.random.key(0))
variables = jax.tree.map(lambda x: x + 0.01 * np.sign(np.sin(np.arange(x.size))).reshape(x.shape), variables)
lines = select_lines(test.labels, 3, 1)
mesh = parallel.make_mesh()
images = parallel.put_replicated(test.images, mesh)
ev = LineEvaluator(model.apply_fn, 24, chunk_lines=8, mesh=mesh)
out = ev(variables, images, lines.pairs, ds.mean, ds.std)
# random lines, distance sampling, chunks of 4 forward micro-batches of 8 points per device
rand = LineEvaluator(model.apply_fn, sampling="distance", step=0.5, mesh=mesh, forward_batch=8, seed=3)(
    variables, images, direction_lines(test.labels, "random", length=5.0, images_per_class=2), ds.mean, ds.std)
np.savez(OUT, devices=jax.device_count(), chunk=ev.chunk_lines, **out, **{"random_" + k: v for k, v in rand.items()})
"""


@pytest.mark.parametrize("devices", [4])
def test_analysis_shards_lines_over_devices(tmp_path, devices):
    outs = {}
    for n in (1, devices):
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        out = tmp_path / f"a{n}.npz"
        subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + ANALYSIS_SCRIPT], env=env, check=True,
                       timeout=120, capture_output=True)
        outs[n] = dict(np.load(out))
    assert int(outs[devices]["devices"]) == devices and int(outs[devices]["chunk"]) % devices == 0
    for k in ("logits", "hf_power", "max_grad", "r_end", "random_logits", "random_hf_power", "random_max_grad"):
        np.testing.assert_allclose(outs[devices][k], outs[1][k], rtol=1e-4, atol=1e-6, err_msg=k)
