"""A non-editable install (a built wheel, as `pip install .` or `pip install git+URL` in Colab
makes) runs the demo from any working directory: configs travel with the package."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_wheel_install_runs_the_demo_from_another_directory(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(REPO)])
    (wheel,) = (tmp_path / "dist").glob("spectral_jax-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    site = run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    # The dependencies come from this environment (a plain path line: its .pth files, such as an
    # editable install of this repository, are not run); the package itself only from the wheel.
    ours = [sysconfig.get_paths()["purelib"]] + [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "_test_dependencies.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(ours)))
    run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run([str(bin_dir / "python"), "-c", "import spectral_jax.configs as c; print(c.__path__[0])"],
                cwd=elsewhere, env=env)
    assert where.strip().startswith(site)  # the installed copy, not this checkout
    out = run([str(bin_dir / "spectral-jax"), "demo", "--config=configs/demo.py:smoke", "--config.epochs=1",
               "--workdir", "w"], cwd=elsewhere, env=env)
    assert "demo finished" in out
    assert (elsewhere / "w" / "report" / "spectra.png").exists()
    assert (elsewhere / "w" / "analysis" / "interpolation" / "summary.csv").exists()


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "spectral_jax").rglob("__init__.py")}
    found |= {"spectral_jax.configs" + "".join("." + q for q in p.parent.relative_to(REPO / "configs").parts)
              for p in (REPO / "configs").rglob("__init__.py")}
    assert listed == found
