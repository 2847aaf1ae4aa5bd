"""Training configs: every shipped YAML loads, bad keys and values are named, overrides apply."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from codemlm.errors import ConfigError
from training.config import (
    CONFIG_DIR,
    TrainConfig,
    config_from_dict,
    load_config,
    resolve_config_path,
    shipped_configs,
)


def test_every_shipped_config_loads_and_round_trips() -> None:
    names = {p.stem for p in shipped_configs()}
    assert {"default", "tiny", "small", "base"} <= names
    for path in shipped_configs():
        config = load_config(path)
        assert isinstance(config, TrainConfig)
        # The model shape a preset plus overrides describe is valid for a real vocabulary.
        config.model.build(vocab_size=4096, pad_id=0)
        again = config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())))
        assert again == config, path.name


def test_default_config_is_the_quick_cpu_run() -> None:
    config = load_config()  # no path: default.yaml
    assert config.data.dir is None  # the standard-library slice
    assert config.model.preset == "tiny"
    assert config.optim.max_steps <= 1000
    assert resolve_config_path("tiny") == CONFIG_DIR / "tiny.yaml"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"optim": {"lrr": 1e-3}}, "optim.lrr"),
        ({"trainer": {"device": 2}}, "trainer.device"),
        ({"model": {"preset": "tiny", "layers": 3}}, "model.layers"),
        ({"model": {"vocab_size": 100}}, "model.vocab_size"),
        ({"masking": {"rates": 0.2}}, "masking.rates"),
        ({"data": {"path": "x"}}, "data.path"),
        ({"optimizer": {}}, "optimizer"),
    ],
)
def test_unknown_keys_are_named(data: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config_from_dict(data)


@pytest.mark.parametrize(
    "data",
    [
        {"optim": {"lr": "fast"}},
        {"optim": {"lr": -1}},
        {"optim": {"schedule": "exponential"}},
        {"optim": {"betas": [0.9]}},
        {"optim": {"max_steps": 2.5}},
        {"trainer": {"strategy": "deepspeed"}},
        {"trainer": {"precision": "8-bit"}},
        {"trainer": {"devices": "many"}},
        {"trainer": {"compile": "yes"}},
        {"masking": {"rate": 1.5}},
        {"model": {"preset": "huge"}},
        {"model": {"dim": 66, "n_heads": 4}},
        {"data": "not a mapping"},
    ],
)
def test_bad_values_are_config_errors(data: dict) -> None:
    with pytest.raises(ConfigError):
        config_from_dict(data)


def test_overrides_parse_yaml_values_and_numeric_strings(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    # PyYAML reads 1e-3 as a string; numeric fields accept it anyway.
    path.write_text("model:\n  preset: small\n  n_layers: 3\noptim:\n  lr: 1e-3\n", encoding="utf-8")
    config = load_config(
        path,
        ["optim.betas=[0.9, 0.95]", "trainer.devices=2", "trainer.compile=true", "masking.strategy=ast"],
        {"data.dir": "/data/with: colon", "optim.max_steps": 7},
    )
    assert math.isclose(config.optim.lr, 1e-3)
    assert config.optim.betas == (0.9, 0.95)
    assert config.trainer.devices == 2 and config.trainer.compile is True
    assert config.masking.strategy == "ast"
    assert config.data.dir == "/data/with: colon"
    assert config.optim.max_steps == 7
    model = config.model.build(vocab_size=1000, pad_id=0, min_seq_len=2048)
    assert (model.dim, model.n_layers, model.vocab_size, model.max_seq_len) == (384, 3, 1000, 2048)


def test_malformed_overrides_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config("tiny", ["optim.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config("tiny", ["task=mlm", "task.x=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    pytest.importorskip("lightning")
    from training.mlm import lr_factor

    kw: dict[str, Any] = {"warmup_steps": 10, "max_steps": 110, "min_ratio": 0.1}
    assert lr_factor(0, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_factor(9, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_factor(60, schedule="cosine", **kw) == pytest.approx(0.55)
    assert lr_factor(60, schedule="linear", **kw) == pytest.approx(0.55)
    assert lr_factor(35, schedule="cosine", **kw) > lr_factor(35, schedule="linear", **kw)
    assert lr_factor(110, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_factor(500, schedule="linear", **kw) == pytest.approx(0.1)
    assert lr_factor(500, schedule="constant", **kw) == 1.0


def test_weight_decay_skips_norms_and_embeddings() -> None:
    pytest.importorskip("lightning")
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder
    from training.mlm import parameter_groups

    model = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=300))
    decay, no_decay = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert any(p is model.tok_emb.weight for p in no_decay["params"])
    assert all(p is not model.tok_emb.weight for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_cli_print_config_applies_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from codemlm.cli import main

    code = main(
        [
            "train",
            "-c",
            "small",
            "--max-steps",
            "5",
            "--devices",
            "4",
            "--strategy",
            "ddp",
            "--set",
            "optim.lr=2e-4",
            "--resume",
            "last",
            "--print-config",
        ]
    )
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["max_steps"] == 5 and printed["optim"]["lr"] == 2e-4
    assert printed["trainer"]["devices"] == 4 and printed["trainer"]["strategy"] == "ddp"
    assert printed["trainer"]["resume"] == "last"
    assert printed["model"]["preset"] == "small"


def test_cli_reports_a_bad_key_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    from codemlm.cli import main

    assert main(["train", "--set", "optim.learning_rate=1", "--print-config"]) == 1
    assert "optim.learning_rate" in capsys.readouterr().err


def test_fsdp_on_a_cpu_is_a_config_error(tmp_path: Path) -> None:
    from training.run import build_trainer

    config = load_config(
        "tiny",
        values={"trainer.strategy": "fsdp", "trainer.accelerator": "cpu", "trainer.out_dir": str(tmp_path)},
    )
    with pytest.raises(ConfigError, match="fsdp needs GPUs"):
        build_trainer(config)


def test_a_config_extends_another_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(
        "task: contrastive\noptim: {lr: 0.001, max_steps: 400, batch_size: 8}\n"
        "task_options: {extra_repos: [a, b], temperature: 0.05}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\noptim: {lr: 0.0003}\ntask_options: {extra_repos: [c]}\n")
    config = load_config(child, ["optim.max_steps=9"])
    assert config.task == "contrastive"
    assert (config.optim.lr, config.optim.max_steps, config.optim.batch_size) == (0.0003, 9, 8)
    # A list replaces the parent's whole; the parent's other keys stay.
    assert config.task_options == {"extra_repos": ["c"], "temperature": 0.05}


def test_a_shipped_config_can_be_extended_by_name(tmp_path: Path) -> None:
    child = tmp_path / "mine.yaml"
    child.write_text("extends: tiny\noptim: {max_steps: 7}\n")
    parent, config = load_config("tiny"), load_config(child)
    assert config.optim.max_steps == 7
    assert config.model == parent.model and config.optim.lr == parent.optim.lr


@pytest.mark.parametrize("text, message", [
    ("extends: child.yaml\n", "extends itself"),
    ("extends: nowhere\n", "extends 'nowhere', which was not found"),
    ("extends: [a, b]\n", "must name one config"),
])
def test_a_bad_extends_is_named(tmp_path: Path, text: str, message: str) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(child)
