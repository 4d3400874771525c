"""Config loading, typed overrides and validation: errors before any compute, naming choices."""

import json
import os

import pytest

from spectral_jax import cli
from spectral_jax import config as config_lib

DEMO = os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py")


def test_overrides_are_typed(smoke_config):
    config_lib.apply_overrides(smoke_config, config_lib.parse_overrides(
        ["--config.epochs=3", "--config.lr=1", "--config.analysis.sampling", "reference", "--config.data_dir=/x",
         "--config.analysis.classes=0,3"]))
    assert smoke_config.epochs == 3 and isinstance(smoke_config.epochs, int)
    assert smoke_config.lr == 1.0 and isinstance(smoke_config.lr, float)
    assert smoke_config.analysis.sampling == "reference"
    assert smoke_config.analysis.classes == (0, 3)
    assert smoke_config.data_dir == "/x"


def test_unknown_key_lists_valid_keys(smoke_config):
    with pytest.raises(config_lib.ConfigError, match=r"Did you mean num_points.*Valid keys there: .*chunk_lines"):
        config_lib.apply_overrides(smoke_config, [("analysis.num_pointz", "3")])
    with pytest.raises(config_lib.ConfigError, match="no key 'epoch'"):
        config_lib.apply_overrides(smoke_config, [("epoch", "3")])


def test_wrong_type_is_an_error(smoke_config):
    with pytest.raises(config_lib.ConfigError, match="'epochs' expects int"):
        config_lib.apply_overrides(smoke_config, [("epochs", "2.5")])
    with pytest.raises(config_lib.ConfigError, match="'lr' expects float"):
        config_lib.apply_overrides(smoke_config, [("lr", "fast")])


def test_unknown_model_suggests_and_lists_valid_names(smoke_config):
    smoke_config.model = "resnet1000"
    with pytest.raises(config_lib.ConfigError,
                       match=r"Unknown model 'resnet1000'\. Did you mean resnet18\? Valid models: cnn, mlp, "):
        config_lib.validate(smoke_config)
    smoke_config.model = "wrn32"
    with pytest.raises(config_lib.ConfigError, match=r"Did you mean wrn_32"):
        config_lib.validate(smoke_config)


def test_unknown_dataset_and_bad_values(smoke_config):
    smoke_config.dataset = "mnist9"
    with pytest.raises(config_lib.ConfigError, match="Valid datasets: .*digits"):
        config_lib.validate(smoke_config)
    smoke_config.dataset = "cifar1"
    with pytest.raises(config_lib.ConfigError, match=r"Unknown dataset 'cifar1'\. Did you mean cifar10"):
        config_lib.validate(smoke_config)
    smoke_config.dataset = "digits"
    smoke_config.analysis.sampling = "raw"
    with pytest.raises(config_lib.ConfigError, match="count, distance, reference"):
        config_lib.validate(smoke_config)
    smoke_config.analysis.sampling = "count"
    smoke_config.analysis.lines = "1/f"
    config_lib.validate(smoke_config)
    smoke_config.analysis.lines = "pair"
    with pytest.raises(config_lib.ConfigError, match=r"Did you mean pairs\? valid choices: pairs, random"):
        config_lib.validate(smoke_config)
    smoke_config.analysis.lines = "pairs"
    smoke_config.analysis.step = 0.0
    with pytest.raises(config_lib.ConfigError, match="'analysis.step' must be > 0"):
        config_lib.validate(smoke_config)
    smoke_config.analysis.step = 1.0
    smoke_config.batch_size = 0
    with pytest.raises(config_lib.ConfigError, match="batch_size"):
        config_lib.validate(smoke_config)


def test_cli_rejects_bad_config_before_writing_anything(tmp_path, capsys):
    workdir = tmp_path / "w"
    code = cli.main(["train", f"--config={DEMO}", "--config.model=nope", "--workdir", str(workdir)])
    assert code == 2
    assert "Valid models: cnn, mlp" in capsys.readouterr().err
    assert not workdir.exists()
    code = cli.main(["train", f"--config={DEMO}:smoke", "--config.nonsense=1", "--workdir", str(workdir)])
    assert code == 2 and not workdir.exists()
    assert cli.main(["train", "--config=configs/missing.py", "--workdir", str(workdir)]) == 2


def test_config_json_roundtrip(tmp_path, smoke_config):
    smoke_config.analysis.num_points = 32
    config_lib.write_config(smoke_config, tmp_path)
    loaded = config_lib.config_from_json(tmp_path / "config.json")
    assert config_lib.diff(loaded, smoke_config) == []
    assert json.loads((tmp_path / "config.json").read_text())["analysis"]["num_points"] == 32
    loaded.lr = 0.5
    assert config_lib.diff(loaded, smoke_config) == ["lr"]


def test_config_file_argument():
    assert config_lib.load_config_file(DEMO + ":smoke").epochs == 2
    with pytest.raises(config_lib.ConfigError, match="demo.py: unknown argument 'huge'"):
        config_lib.load_config_file(DEMO + ":huge")


def test_bad_config_argument_is_a_clean_cli_error(tmp_path, capsys):
    code = cli.main(["train", "--config=configs/demo.py:smok", "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("spectral-jax train: error: demo.py: unknown argument 'smok'. Did you mean smoke?")
    assert "Traceback" not in err and not (tmp_path / "w").exists()


def test_installed_configs_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("configs/demo.py", "demo.py", "demo"):
        assert config_lib.resolve_config_path(spec).read_text().startswith('"""The demo')
    with pytest.raises(config_lib.ConfigError, match=r"among the installed configs \(.*demo\.py"):
        config_lib.resolve_config_path("configs/nope.py")


def test_config_subcommand_prints_every_key_with_help(capsys):
    assert cli.main(["config", f"--config={DEMO}:smoke", "--config.lr=0.2"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split(" = ")[0]: line for line in out}
    assert set(rows) == {k for k, _, _ in config_lib.FIELDS}
    assert rows["lr"].startswith("lr = 0.2 ") and "# peak learning rate" in rows["lr"]
    assert rows["epochs"].startswith("epochs = 2 ")
    assert "# M points per line" in rows["analysis.num_points"]


@pytest.mark.parametrize("command", ["train", "analyze"])
def test_help_explains_overrides_and_lists_keys(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert "--config.KEY=VALUE" in out and "spectral-jax config" in out
    assert "analysis.num_points," in out and ("noise.type," in out) == (command == "train")
