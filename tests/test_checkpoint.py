"""The model directory: round trips, fp16 storage, every way a directory can be broken."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load, load_file, save_file

from codemlm.checkpoint import (
    CARD_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    MODEL_ENV_VAR,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    default_model_dir,
    load_model_dir,
    read_model_summary,
    resolve_model_dir,
    save_model_dir,
)
from codemlm.config import ModelConfig
from codemlm.errors import CheckpointError, ModelNotFoundError
from codemlm.model import CodeEncoder
from codemlm.tokenizer import CodeTokenizer

torch.set_num_threads(1)

CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    print(i * i)\n",
    "function greet(name) {\n  return `hello ${name}`;\n}\n",
]
SUMMARY = {
    "data": {"repos": ["tests/fixtures"], "tokens": 1234},
    "command": "codemlm train --preset tiny --data data/",
    "metrics": {"val_loss": 3.21, "steps": 10},
    "seconds": 12.5,
}


@pytest.fixture(scope="module")
def tokenizer() -> CodeTokenizer:
    return CodeTokenizer.train_from_iterator(CODE * 3, vocab_size=320, min_frequency=1)


@pytest.fixture
def model(tokenizer: CodeTokenizer) -> CodeEncoder:
    torch.manual_seed(0)
    return CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size))


@pytest.fixture
def saved(tmp_path: Path, model: CodeEncoder, tokenizer: CodeTokenizer) -> Path:
    return save_model_dir(tmp_path / "model", model, tokenizer, summary=SUMMARY)


def sample_ids(tokenizer: CodeTokenizer) -> torch.Tensor:
    return torch.tensor([tokenizer.encode(CODE[1]).ids[:40]])


def edit_config(directory: Path, **changes) -> None:
    data = json.loads((directory / CONFIG_FILE).read_text())
    for key, value in changes.items():
        if key in data["model"]:
            data["model"][key] = value
        else:
            data[key] = value
    (directory / CONFIG_FILE).write_text(json.dumps(data))


def test_round_trip_gives_identical_outputs(saved, model, tokenizer):
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, CARD_FILE]
    )
    loaded = load_model_dir(saved)
    assert loaded.config == model.config
    assert loaded.summary == SUMMARY
    assert loaded.path == saved
    assert not loaded.model.training
    assert loaded.tokenizer.to_str() == tokenizer.to_str()
    ids = sample_ids(tokenizer)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(ids), model(ids))
        assert torch.equal(loaded.model.embed(ids), model.embed(ids))
    for p in loaded.model.parameters():
        assert p.dtype == torch.float32 and p.device.type == "cpu"
    # Tied embedding stays tied after loading: the head decodes with the embedding matrix.
    hidden = loaded.model(ids)
    torch.testing.assert_close(
        loaded.model.mlm_logits(hidden), loaded.model.head(hidden) @ loaded.model.tok_emb.weight.T
    )


def test_config_json_and_weights_layout(saved, model):
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert config["model"]["dim"] == model.config.dim
    assert config["summary"] == SUMMARY
    with safe_open(str(saved / WEIGHTS_FILE), framework="pt") as f:
        keys = set(f.keys())
    # The tied embedding is stored once; the RoPE tables are derived, not stored.
    assert "tok_emb.weight" in keys
    assert not any("decoder" in k or "rope" in k for k in keys)
    assert sum(load_file(str(saved / WEIGHTS_FILE))[k].numel() for k in keys) == model.num_parameters()


def test_model_card_is_generated_from_summary(saved):
    card = (saved / CARD_FILE).read_text()
    assert "## Data" in card and "tests/fixtures" in card
    assert "codemlm train --preset tiny --data data/" in card
    assert "## Metrics" in card and "val_loss" in card and "3.21" in card
    assert "seconds" in card


def test_explicit_card_is_written_verbatim(tmp_path, model, tokenizer):
    out = save_model_dir(tmp_path / "m", model, tokenizer, summary={}, card="# my card\n")
    assert (out / CARD_FILE).read_text() == "# my card\n"


def test_float16_storage_round_trip(tmp_path, model, tokenizer, saved):
    half = save_model_dir(tmp_path / "half", model, tokenizer, summary=SUMMARY, dtype="float16")
    assert (half / WEIGHTS_FILE).stat().st_size < 0.6 * (saved / WEIGHTS_FILE).stat().st_size
    assert json.loads((half / CONFIG_FILE).read_text())["weights_dtype"] == "float16"
    loaded = load_model_dir(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    ids = sample_ids(tokenizer)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids), model(ids), atol=2e-2, rtol=1e-2)
        cos = (loaded.model.embed(ids) * model.embed(ids)).sum()
    assert cos > 0.999


def test_unknown_storage_dtype_is_rejected(tmp_path, model, tokenizer):
    with pytest.raises(CheckpointError, match="dtype"):
        save_model_dir(tmp_path / "m", model, tokenizer, summary={}, dtype="int8")


def test_save_rejects_tokenizer_of_another_vocabulary(tmp_path, tokenizer):
    model = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size + 1))
    with pytest.raises(CheckpointError, match="vocabulary"):
        save_model_dir(tmp_path / "m", model, tokenizer, summary={})
    assert not (tmp_path / "m").exists()


def test_unserializable_summary_fails_before_writing(tmp_path, model, tokenizer):
    with pytest.raises(CheckpointError, match="JSON"):
        save_model_dir(tmp_path / "m", model, tokenizer, summary={"when": object()})
    assert not (tmp_path / "m").exists()


def test_saving_over_an_existing_directory_replaces_it(saved, tokenizer):
    torch.manual_seed(1)
    other = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size)).eval()
    save_model_dir(saved, other, tokenizer, summary={"metrics": {"val_loss": 1.0}})
    loaded = load_model_dir(saved)
    ids = sample_ids(tokenizer)
    with torch.no_grad():
        assert torch.equal(loaded.model(ids), other(ids))
    assert not any(p.name.endswith(".tmp") for p in saved.iterdir())


def test_summary_reads_without_the_weights(saved):
    assert read_model_summary(saved) == SUMMARY
    (saved / WEIGHTS_FILE).unlink()  # a run whose weights were not kept still documents itself
    assert read_model_summary(saved)["seconds"] == 12.5
    with pytest.raises(CheckpointError):
        load_model_dir(saved)


def test_summary_of_a_bad_config_is_a_checkpoint_error(saved):
    edit_config(saved, summary=["not", "an", "object"])
    with pytest.raises(CheckpointError, match="summary"):
        read_model_summary(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_model_summary(saved)


def test_wrong_format_version(saved):
    edit_config(saved, format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=r"format version 2 is not supported.*reads format version 1"):
        load_model_dir(saved)


def test_missing_format_version(saved):
    data = json.loads((saved / CONFIG_FILE).read_text())
    del data["format_version"]
    (saved / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format version None"):
        load_model_dir(saved)


def test_config_shape_not_matching_weights(saved):
    edit_config(saved, mlp_hidden=96)
    with pytest.raises(
        CheckpointError, match=r"'blocks\.0\.mlp\.up\.weight' has shape \(256, 64\).*\(192, 64\)"
    ):
        load_model_dir(saved)


def test_config_with_more_layers_than_weights(saved):
    edit_config(saved, n_layers=3)
    with pytest.raises(CheckpointError, match=r"missing tensors \['blocks\.2\."):
        load_model_dir(saved)


def test_invalid_model_config(saved):
    edit_config(saved, n_heads=5)
    with pytest.raises(CheckpointError, match=r"invalid model config.*divisible"):
        load_model_dir(saved)
    edit_config(saved, n_heads=4, colour="blue")  # unknown top-level keys are fine...
    load_model_dir(saved)
    data = json.loads((saved / CONFIG_FILE).read_text())
    data["model"]["colour"] = "blue"  # ...but not unknown model fields
    (saved / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="colour"):
        load_model_dir(saved)


def test_config_json_not_json(saved):
    (saved / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        load_model_dir(saved)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_weights(saved, damage):
    weights = saved / WEIGHTS_FILE
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        weights.write_bytes(b"\x07" * 64 + data[64:])
    else:
        weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt or not a safetensors file"):
        load_model_dir(saved)


def test_non_finite_weights(saved):
    state = load((saved / WEIGHTS_FILE).read_bytes())  # in memory, not a view of the file
    state["norm.weight"][0] = float("nan")
    save_file(state, str(saved / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=r"'norm\.weight' contains NaN"):
        load_model_dir(saved)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (CONFIG_FILE, "not a codemlm model directory"),
        (WEIGHTS_FILE, "has no weights"),
        (TOKENIZER_FILE, "has no tokenizer"),
    ],
)
def test_missing_file(saved, name, message):
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=message) as info:
        load_model_dir(saved)
    assert name in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model_dir(tmp_path / "nowhere")


def test_tokenizer_of_another_vocabulary(saved):
    other = CodeTokenizer.train_from_iterator(CODE * 3, vocab_size=300, min_frequency=1)
    other.save(saved / TOKENIZER_FILE)
    with pytest.raises(CheckpointError, match=r"tokenizer vocabulary \(300\) does not match vocab_size"):
        load_model_dir(saved)


def test_corrupt_tokenizer(saved):
    (saved / TOKENIZER_FILE).write_text('{"model": 1}')
    with pytest.raises(CheckpointError, match="cannot load the tokenizer"):
        load_model_dir(saved)


def test_loading_never_unpickles(saved, tokenizer, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loading a model directory must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load_model_dir(saved)
    assert loaded.model.num_parameters() > 0
    # A pickled state dict in place of the safetensors file is rejected, not executed.
    torch.save(loaded.model.state_dict(), saved / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        load_model_dir(saved)


def test_resolve_model_dir_prefers_the_given_path(saved, monkeypatch, tmp_path):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    assert resolve_model_dir(str(saved)) == saved
    assert resolve_model_dir(saved) == saved
    with pytest.raises(ModelNotFoundError, match="pass --model"):
        resolve_model_dir(str(tmp_path / "nowhere"))
    # The given path wins over the environment.
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "nowhere"))
    assert resolve_model_dir(str(saved)) == saved


def test_resolve_model_dir_from_environment(saved, monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV_VAR, str(saved))
    assert resolve_model_dir(None) == saved
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match=MODEL_ENV_VAR):
        resolve_model_dir(None)


def test_resolve_model_dir_falls_back_to_the_shipped_model(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    shipped = default_model_dir()
    assert shipped.name == "default_model" and shipped.parent.name == "codemlm"
    if (shipped / CONFIG_FILE).is_file():
        assert resolve_model_dir(None) == shipped
        assert load_model_dir(shipped).model.num_parameters() > 0
    else:
        with pytest.raises(ModelNotFoundError, match=r"pass --model DIR.*codemlm train"):
            resolve_model_dir(None)


def test_every_file_of_the_shipped_model_is_package_data() -> None:
    """A non-editable install carries the whole shipped model, search encoder and cross-encoder included."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["codemlm"]
    package = root / "codemlm"
    packaged = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    shipped = {path for path in (package / "default_model").rglob("*") if path.is_file()}
    assert shipped and shipped <= packaged, sorted(str(p.relative_to(package)) for p in shipped - packaged)
