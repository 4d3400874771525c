"""Every config file loads, validates, and states its command, hardware, time and result."""

import re
from pathlib import Path

import pytest

from spectral_jax import config as config_lib

CONFIGS = sorted(p for p in (Path(__file__).resolve().parent.parent / "configs").rglob("*.py")
                 if not p.name.startswith("_"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_files_validate_and_document_themselves(path):
    text = path.read_text()
    doc = text.split('"""')[1]
    for word in ("Command:", "Hardware:", "Time:", "Result:"):
        assert word in doc, f"{path.name} docstring lacks {word}"
    args = {""} | set(re.findall(r'arg == "(\w+)"', text))
    for group in re.findall(r'arg in \(([^)]*)\)', text):
        args |= set(re.findall(r'"(\w+)"', group))
    assert len(args) > 1, f"{path.name} has no small (cpu/smoke) variant"
    for arg in sorted(args):
        config = config_lib.load_config_file(f"{path}:{arg}" if arg else str(path))
        config_lib.validate(config)

