"""The import graph is the data flow: no module imports a higher layer, no cycles.

Layers, lowest first (docs/architecture.md): errors, io -> data, models -> config -> parallel
-> train -> spectral -> report -> sweep -> api -> cli; the package's __init__ may import
anything. Every import counts, also one inside a function. A new top-level module must be
given a layer here.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "spectral_jax"
# `configs` (the config files, installed as spectral_jax.configs) build their sweeps with sweep.hyper.
LAYERS = {"errors": 0, "io": 0, "data": 1, "models": 1, "config": 2, "parallel": 3, "train": 4,
          "spectral": 5, "report": 6, "sweep": 7, "configs": 7, "api": 8, "cli": 9}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, package: str) -> set[str]:
    """Absolute names of the spectral_jax modules (or packages) that `source`, a module of
    `package`, imports."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {name for name in out if name.startswith("spectral_jax.")}


def unit(module: str) -> str:
    """The top-level unit a module belongs to: spectral_jax.train.loop -> train."""
    return module.split(".")[1]


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name == "spectral_jax":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = imports(path.read_text(), package)
        graph.setdefault(unit(name), set()).update(unit(t) for t in targets if unit(t) != unit(name))
    return graph


def test_every_unit_has_a_layer():
    assert set(edges()) <= set(LAYERS), f"give these a layer in LAYERS: {set(edges()) - set(LAYERS)}"


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} -> {b}" for a, targets in edges().items() for b in targets
              if LAYERS.get(b, -1) > LAYERS.get(a, 99)]
    assert not upward, f"upward imports: {upward}"


def test_no_cycles_between_units():
    graph = edges()

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert not [u for u in graph if reaches(u, u, {u})]


@pytest.mark.parametrize("source, expected", [
    ("from spectral_jax.train import loop", {"spectral_jax.train", "spectral_jax.train.loop"}),
    ("def f():\n    import spectral_jax.cli", {"spectral_jax.cli"}),
    ("from ..spectral import lines", {"spectral_jax.spectral", "spectral_jax.spectral.lines"}),
    ("from . import step\nimport numpy", {"spectral_jax.data", "spectral_jax.data.step"}),
])
def test_the_checker_sees_every_kind_of_import(source, expected):
    assert imports(source, "spectral_jax.data") == expected
