"""The model directory: the only code that reads or writes it.

A model directory holds four files:

- ``config.json``: ``{"format_version", "model": ModelConfig fields, "summary": training
  summary, "weights_dtype", "codemlm_version"}``
- ``model.safetensors``: the weights (tied embedding stored once); loading never unpickles
- ``tokenizer.json``: the tokenizer the model was trained with
- ``MODEL_CARD.md``: what it was trained on, with which command, and how well it does

Everything that can be wrong with a directory (missing file, other format version, shapes
that do not match the config, a corrupt weights file, a tokenizer of another vocabulary)
raises :class:`~codemlm.errors.CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codemlm import __version__
from codemlm.config import ModelConfig, from_dict
from codemlm.errors import CheckpointError, CodemlmError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from codemlm.model import CodeEncoder
    from codemlm.tokenizer import CodeTokenizer

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MODEL_ENV_VAR",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "default_model_dir",
    "load_model_dir",
    "read_model_summary",
    "render_model_card",
    "resolve_model_dir",
    "save_model_dir",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "MODEL_CARD.md"
MODEL_ENV_VAR = "CODEMLM_MODEL"

# Storage dtypes accepted by save_model_dir; weights are always float32 once loaded.
# Torch is imported by the functions that move tensors, not by this module: finding a model
# directory and reading its config (what lexical search needs) must not cost a torch import.
_STORAGE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class LoadedModel:
    model: CodeEncoder
    tokenizer: CodeTokenizer
    config: ModelConfig
    summary: dict[str, Any]
    path: Path


# --------------------------------------------------------------------------- writing
def save_model_dir(
    path: str | os.PathLike[str],
    model: CodeEncoder,
    tokenizer: CodeTokenizer,
    *,
    summary: Mapping[str, Any],
    card: str | None = None,
    dtype: str = "float32",
) -> Path:
    """Write a model directory (created if needed; files replaced atomically one by one)."""
    out = Path(path)
    config = model.config
    if dtype not in _STORAGE_DTYPES:
        raise CheckpointError(f"unsupported weights dtype {dtype!r}; choose one of {sorted(_STORAGE_DTYPES)}")
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"tokenizer vocabulary ({tokenizer.vocab_size}) does not match the model's "
            f"vocab_size ({config.vocab_size})"
        )
    # Serialize everything first, so a bad summary fails before any file is touched.
    try:
        config_text = json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "model": asdict(config),
                "summary": dict(summary),
                "weights_dtype": dtype,
                "codemlm_version": __version__,
            },
            indent=2,
            sort_keys=False,
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"training summary is not JSON-serializable: {exc}") from exc
    card_text = card if card is not None else render_model_card(config, dict(summary))
    import torch
    from safetensors.torch import save_file

    storage = getattr(torch, dtype)
    # state_dict holds the embedding once (the decoder reuses it); RoPE tables are not persistent.
    tensors = {
        name: t.detach().to(device="cpu", dtype=storage if t.is_floating_point() else t.dtype).contiguous()
        for name, t in model.state_dict().items()
    }

    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
        _write_atomic(out / TOKENIZER_FILE, lambda p: tokenizer.save(p))
        _write_atomic(out / CARD_FILE, lambda p: p.write_text(card_text, encoding="utf-8"))
        # config.json last: a directory with a config is a complete one.
        _write_atomic(out / CONFIG_FILE, lambda p: p.write_text(config_text + "\n", encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot write model directory {out}: {exc}") from exc
    return out


def _write_atomic(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def render_model_card(config: ModelConfig, summary: Mapping[str, Any]) -> str:
    """A Markdown model card from the training summary (data, command, metrics, then the rest)."""
    lines = [f"# codemlm model ({config.name})", ""]
    lines += [
        "A bidirectional code encoder trained with masked language modelling; used by codemlm for",
        "masked-span completion and code search.",
        "",
        "## Shape",
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in asdict(config).items()]
    lines += [f"| parameters | {config.num_parameters():,} |", ""]
    rest = dict(summary)
    for key, title in (("data", "Data"), ("command", "Command"), ("metrics", "Metrics")):
        if key not in rest:
            continue
        value = rest.pop(key)
        lines += [f"## {title}", ""]
        if key == "command":
            lines += ["```", str(value), "```"]
        else:
            lines += _render_value(value)
        lines.append("")
    if rest:
        lines += ["## Training", ""]
        lines += _render_value(rest)
        lines.append("")
    if not summary:
        lines += ["No training summary was recorded.", ""]
    return "\n".join(lines)


def _render_value(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [f"- **{k}**: {_inline(v)}" for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [f"- {_inline(v)}" for v in value]
    return [str(value)]


def _inline(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value)
    return str(value)


# --------------------------------------------------------------------------- reading
def load_model_dir(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model directory into an eval-mode float32 model; any problem is a CheckpointError."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"model directory {root} does not exist or is not a directory")
    config_data = _read_config(root / CONFIG_FILE)
    try:
        config = from_dict(ModelConfig, config_data["model"])
    except CodemlmError as exc:
        raise CheckpointError(f"{root / CONFIG_FILE}: invalid model config: {exc}") from exc
    summary = config_data.get("summary") or {}
    if not isinstance(summary, dict):
        raise CheckpointError(f"{root / CONFIG_FILE}: 'summary' must be an object")

    tokenizer = _read_tokenizer(root / TOKENIZER_FILE)
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{root / TOKENIZER_FILE}: tokenizer vocabulary ({tokenizer.vocab_size}) does not match "
            f"vocab_size {config.vocab_size} in {CONFIG_FILE}"
        )
    if tokenizer.pad_id != config.pad_id:
        raise CheckpointError(
            f"{root / TOKENIZER_FILE}: tokenizer pad id ({tokenizer.pad_id}) does not match "
            f"pad_id {config.pad_id} in {CONFIG_FILE}"
        )

    model = _read_weights(root / WEIGHTS_FILE, config)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, summary=summary, path=root)


def read_model_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``summary`` a model directory's config carries (how it was trained), weights unread.

    A run whose weights were not kept (a phase trained on a machine that was given back) still
    documents itself through its config file alone.
    """
    file = Path(path) / CONFIG_FILE
    summary = _read_config(file).get("summary") or {}
    if not isinstance(summary, dict):
        raise CheckpointError(f"{file}: 'summary' must be an object")
    return summary


def _read_config(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: not a codemlm model directory")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} must hold a JSON object")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: model directory format version {version!r} is not supported; this codemlm "
            f"({__version__}) reads format version {FORMAT_VERSION}. Re-export or retrain the model."
        )
    if not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{file}: missing the 'model' config object")
    return data


def _read_tokenizer(file: Path) -> CodeTokenizer:
    from codemlm.tokenizer import CodeTokenizer  # lazy: keeps `import codemlm.checkpoint` light

    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the model directory has no tokenizer")
    try:
        return CodeTokenizer.from_file(file)
    except CodemlmError as exc:
        raise CheckpointError(f"{file}: cannot load the tokenizer: {exc}") from exc


_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                 "kaiming_normal_", "xavier_uniform_", "xavier_normal_")
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _initialisers_off() -> Iterator[None]:
    """``torch.nn.init`` as no-ops while a model is built only to adopt loaded weights: the
    values would be thrown away (the parameters stay uninitialised memory until replaced)."""
    import torch.nn.init as init

    with _INIT_LOCK:
        saved = {name: getattr(init, name) for name in _INITIALISERS}
        try:
            for name in _INITIALISERS:
                setattr(init, name, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for name, function in saved.items():
                setattr(init, name, function)


def _read_weights(file: Path, config: ModelConfig) -> CodeEncoder:
    import torch
    from safetensors.torch import load_file

    from codemlm.model import CodeEncoder

    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the model directory has no weights")
    try:
        state = load_file(str(file), device="cpu")  # safetensors: plain tensors, never pickle
    except Exception as exc:  # the safetensors reader raises its own (untyped) errors on bad bytes
        raise CheckpointError(f"{file} is corrupt or not a safetensors file: {exc}") from exc

    # Built on the CPU with the initialisers off, then every parameter is replaced by its loaded
    # tensor. Not on the meta device: the first op there makes torch import its compiler stack
    # (~1.3 s for every command that loads a model).
    with _initialisers_off():
        model = CodeEncoder(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{file} does not match the config in {CONFIG_FILE}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )
    for name in expected:  # in module order, so the first mismatch reported is the earliest
        tensor = state[name]
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                f"{file}: tensor {name!r} has shape {tuple(tensor.shape)} but the config in "
                f"{CONFIG_FILE} implies {want}"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{file}: tensor {name!r} has non-float dtype {tensor.dtype}")
        # A copy: safetensors may hand out views of a memory-mapped file, which would crash
        # (SIGBUS) if the file were later rewritten in place under a running server.
        tensor = tensor.to(torch.float32, copy=True)
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{file}: tensor {name!r} contains NaN or infinite values")
        state[name] = tensor
    model.load_state_dict(state, strict=True, assign=True)
    return model


# --------------------------------------------------------------------------- finding a model
def default_model_dir() -> Path:
    """Where the shipped model lives inside the package (it may be absent in a dev checkout)."""
    return Path(__file__).resolve().parent / "default_model"


def resolve_model_dir(path: str | os.PathLike[str] | None) -> Path:
    """The model directory to use: ``path`` if given, else ``$CODEMLM_MODEL``, else the shipped one."""
    if path is not None and str(path) != "":
        given = Path(path).expanduser()
        if not (given / CONFIG_FILE).is_file():
            raise ModelNotFoundError(
                f"no model directory at {given} (expected {given / CONFIG_FILE}); pass --model with a "
                "directory written by `codemlm train`"
            )
        return given
    env = os.environ.get(MODEL_ENV_VAR)
    if env:
        from_env = Path(env).expanduser()
        if not (from_env / CONFIG_FILE).is_file():
            raise ModelNotFoundError(
                f"${MODEL_ENV_VAR} points to {from_env}, which is not a model directory "
                f"(no {CONFIG_FILE}); fix it, unset it, or pass --model DIR"
            )
        return from_env
    shipped = default_model_dir()
    if (shipped / CONFIG_FILE).is_file():
        return shipped
    raise ModelNotFoundError(
        "no model found: pass --model DIR (a directory written by `codemlm train`), set "
        f"${MODEL_ENV_VAR}, or train one with `codemlm train`"
    )
