"""A model directory's config.json is user input: every bad field is one clear CheckpointError."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codemlm.checkpoint import load_model_dir, save_model_dir
from codemlm.config import ModelConfig
from codemlm.errors import CheckpointError, ConfigError
from codemlm.model import CodeEncoder
from codemlm.tokenizer import CodeTokenizer

BAD_FIELDS = [
    ("dim", "abc"),
    ("dim", 384.0),
    ("dim", True),
    ("dim", -64),
    ("n_layers", 0),
    ("max_seq_len", 1e9),
    ("max_seq_len", 10**9),
    ("n_heads", None),
    ("rope_theta", math.nan),
    ("rope_theta", -1),
    ("rope_theta", "big"),
    ("norm_eps", -1),
    ("norm_eps", math.inf),
    ("dropout", 1.5),
    ("pad_id", 10**7),
    ("name", 3),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_bad_model_fields_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"model.{field}"):
        ModelConfig(**{field: value})  # type: ignore[arg-type]


def test_presets_are_valid() -> None:
    for name in ("tiny", "compact", "small", "base"):
        assert ModelConfig.from_preset(name).num_parameters() > 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = CodeTokenizer.train_from_iterator(["def f(x):\n    return x + 1\n"] * 20, vocab_size=300)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, mlp_hidden=32)
    return save_model_dir(tmp_path_factory.mktemp("m") / "model", CodeEncoder(config), tokenizer, summary={})


@pytest.mark.parametrize(("field", "value"), [f for f in BAD_FIELDS if not isinstance(f[1], float) or math.isfinite(f[1])])
def test_a_model_directory_with_a_bad_field_fails_to_load_with_one_line(
    model_dir: Path, tmp_path: Path, field: str, value: object
) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    for file in model_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    data = json.loads((broken / "config.json").read_text())
    data["model"][field] = value
    (broken / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="invalid model config") as info:
        load_model_dir(broken)
    assert "\n" not in str(info.value)
