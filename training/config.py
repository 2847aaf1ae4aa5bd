"""The typed training configuration: YAML files plus dotted command-line overrides.

A run is described by one :class:`TrainConfig` with sections ``data``, ``model``, ``masking``,
``optim`` and ``trainer``. Files under ``training/configs/`` are plain YAML mappings of those
sections; ``--set optim.lr=3e-4`` (or the direct flags of ``codemlm train``) override single
values. Every key is checked against the dataclasses here, so a misspelt key is a
:class:`~codemlm.errors.ConfigError` naming it, never a silently ignored setting.
No torch or lightning here: the CLI validates a config before it pays for those imports.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import yaml

from codemlm.config import MODEL_PRESETS, MaskingConfig, ModelConfig
from codemlm.config import from_dict as _masking_from_dict
from codemlm.errors import ConfigError

__all__ = [
    "CONFIG_DIR",
    "SCHEDULES",
    "DataConfig",
    "ModelSection",
    "OptimConfig",
    "TrainConfig",
    "TrainerConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "read_config_data",
    "resolve_config_path",
    "set_dotted",
    "shipped_configs",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SCHEDULES = ("cosine", "linear", "constant")
_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
_STRATEGIES = ("auto", "ddp", "fsdp", "ddp_spawn", "single_device")
_PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "64-true")
# Model fields the data decides: never set by hand.
_MODEL_FIELDS_FROM_DATA = ("vocab_size", "pad_id")


@dataclass(frozen=True)
class DataConfig:
    """Where the training windows come from and how they are loaded."""

    # A data directory made by `codemlm corpus build` (DIR/tokens, DIR/tokenizer.json).
    # None: the Python standard library, built once into the cache (see stdlib_* below).
    dir: str | None = None
    num_workers: int = 0
    # Batches of similar window lengths (training/data.py group_by_length): less padding to
    # compute on a CPU; a compiled run pads every batch to one width and ignores it.
    group_by_length: bool = True
    # Standard-library corpus used when `dir` is None: kept small so a first run is quick.
    stdlib_max_files: int = 300
    stdlib_seq_len: int = 256
    stdlib_vocab_size: int = 8192

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        if self.stdlib_max_files < 1:
            raise ConfigError("data.stdlib_max_files must be >= 1")
        if self.stdlib_seq_len < 16:
            raise ConfigError("data.stdlib_seq_len must be >= 16")
        if self.stdlib_vocab_size < 300:
            raise ConfigError("data.stdlib_vocab_size must be >= 300 (256 bytes + specials + merges)")


@dataclass(frozen=True)
class ModelSection:
    """A model preset plus field overrides (``model: {preset: small, n_layers: 4}``)."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in MODEL_PRESETS:
            raise ConfigError(
                f"model.preset: unknown preset {self.preset!r}; choose one of {sorted(MODEL_PRESETS)}"
            )
        known = {f.name for f in fields(ModelConfig)} - {"name", *_MODEL_FIELDS_FROM_DATA}
        for key in self.overrides:
            if key not in known:
                hint = " (taken from the tokenizer)" if key in _MODEL_FIELDS_FROM_DATA else ""
                raise ConfigError(f"unknown config key 'model.{key}'{hint}")
        self.build(vocab_size=1024, pad_id=0)  # validate shapes now, not after data loading

    def build(self, *, vocab_size: int, pad_id: int, min_seq_len: int = 0) -> ModelConfig:
        """The concrete model shape for a tokenizer; ``max_seq_len`` grows to fit the data (RoPE has no table to outgrow)."""
        values = dict(self.overrides)
        values["max_seq_len"] = max(
            int(values.get("max_seq_len", MODEL_PRESETS[self.preset].max_seq_len)), min_seq_len
        )
        try:
            return ModelConfig.from_preset(self.preset, vocab_size=vocab_size, pad_id=pad_id, **values)
        except TypeError as exc:
            raise ConfigError(f"invalid model override: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, **self.overrides}


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, warm-up then decay per optimizer step, gradient clipping, accumulation."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1  # the decay ends at lr * min_lr_ratio
    max_steps: int = 1000
    batch_size: int = 32  # windows per device per micro-batch
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    accumulate: int = 1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError("optim.lr must be positive")
        if self.weight_decay < 0:
            raise ConfigError("optim.weight_decay must be >= 0")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            raise ConfigError("optim.warmup_steps must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("optim.min_lr_ratio must be in [0, 1]")
        if self.max_steps < 1:
            raise ConfigError("optim.max_steps must be >= 1")
        if self.batch_size < 1:
            raise ConfigError("optim.batch_size must be >= 1")
        if self.grad_clip < 0:
            raise ConfigError("optim.grad_clip must be >= 0 (0 disables clipping)")
        if self.accumulate < 1:
            raise ConfigError("optim.accumulate must be >= 1")


@dataclass(frozen=True)
class TrainerConfig:
    """Hardware, precision, evaluation, checkpointing and output locations."""

    accelerator: str = "auto"
    devices: int | str = "auto"  # a count, "auto", or "-1" for every visible device
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: bf16-mixed on a GPU or a native-bf16 CPU, else 32-true
    compile: bool = False
    # Torch intra-op threads when training on the CPU; 0 keeps torch's default. Small models
    # gain little from more threads and lose a lot when the cores are shared.
    cpu_threads: int = 0
    seed: int = 0
    # Stop after this much wall-clock (0: no limit); the model is exported as after max_steps.
    # A CPU budget is time, not steps: the cosine schedule still follows max_steps.
    max_minutes: float = 0.0
    val_check_interval: int = 500  # optimizer steps between validations; 0 disables validation
    limit_val_batches: int = 50
    checkpoint_every: int = 500  # optimizer steps between Lightning checkpoints (also last.ckpt)
    log_every: int = 10
    progress: bool = True
    out_dir: str = "runs/codemlm"
    export_dir: str | None = None  # None: OUT_DIR/model
    resume: str | None = (
        None  # a Lightning checkpoint to continue from, or "last" (OUT_DIR/checkpoints/last.ckpt)
    )

    def __post_init__(self) -> None:
        if self.accelerator not in _ACCELERATORS:
            raise ConfigError(f"trainer.accelerator must be one of {_ACCELERATORS}, got {self.accelerator!r}")
        if self.strategy not in _STRATEGIES:
            raise ConfigError(f"trainer.strategy must be one of {_STRATEGIES}, got {self.strategy!r}")
        if self.precision not in _PRECISIONS:
            raise ConfigError(f"trainer.precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if (
            isinstance(self.devices, str)
            and self.devices not in ("auto", "-1")
            and not self.devices.isdigit()
        ):
            raise ConfigError(f"trainer.devices must be a count, 'auto' or -1, got {self.devices!r}")
        if isinstance(self.devices, int) and self.devices < 1 and self.devices != -1:
            raise ConfigError(f"trainer.devices must be >= 1 (or -1 for all), got {self.devices}")
        for name in ("num_nodes", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1")
        if not (self.max_minutes >= 0.0 and math.isfinite(self.max_minutes)):
            raise ConfigError(f"trainer.max_minutes must be a finite number >= 0, got {self.max_minutes}")
        for name in ("val_check_interval", "limit_val_batches", "checkpoint_every", "cpu_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer.{name} must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``task`` picks the trainer in ``training.run.TASKS``."""

    task: str = "mlm"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # Start from the weights of an exported model directory (continued pretraining, fine-tuning).
    init_from: str | None = None
    # Free-form settings of tasks other than mlm; each task validates its own keys.
    task_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.task or not isinstance(self.task, str):
            raise ConfigError("task must be a non-empty string")

    @property
    def out_dir(self) -> Path:
        return Path(self.trainer.out_dir)

    @property
    def export_dir(self) -> Path:
        return Path(self.trainer.export_dir) if self.trainer.export_dir else self.out_dir / "model"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-ready) that :func:`config_from_dict` turns back into this config."""
        out: dict[str, Any] = {"task": self.task}
        for section in ("data", "masking", "optim", "trainer"):
            out[section] = _plain(dataclasses.asdict(getattr(self, section)))
        out["model"] = self.model.to_dict()
        out["init_from"] = self.init_from
        out["task_options"] = copy.deepcopy(self.task_options)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- building


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check one value against a field annotation, converting the few safe cases.

    PyYAML reads ``1e-3`` as a string (YAML 1.1 wants ``1.0e-3``), so numeric strings become
    numbers for numeric fields; lists become tuples for tuple fields. Anything else of the
    wrong type is a ConfigError naming the key.
    """
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"config key '{key}' must not be null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"invalid value for '{key}': {value!r}")
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. precision: 32
        raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{key}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    return value


def _build_section(cls: type, data: Any, section: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{section}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{section}.{key}'")
        values[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**values)


def _build_masking(data: Any) -> MaskingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section 'masking' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(MaskingConfig)
    values = {}
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown config key 'masking.{key}'")
        values[key] = _coerce(value, hints[key], f"masking.{key}")
    return typing.cast(MaskingConfig, _masking_from_dict(MaskingConfig, values))


def _build_model(data: Any) -> ModelSection:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section 'model' must be a mapping, got {data!r}")
    data = dict(data)
    preset = _coerce(data.pop("preset", "tiny"), str, "model.preset")
    hints = typing.get_type_hints(ModelConfig)
    overrides = {}
    for key, value in data.items():
        if key in hints and key not in ("name", *_MODEL_FIELDS_FROM_DATA):
            value = _coerce(value, hints[key], f"model.{key}")
        overrides[key] = value  # unknown keys are reported by ModelSection by name
    return ModelSection(preset=preset, overrides=overrides)


_TOP_LEVEL = ("task", "data", "model", "masking", "optim", "trainer", "init_from", "task_options")


def config_from_dict(data: dict[str, Any] | None) -> TrainConfig:
    """A validated :class:`TrainConfig` from plain data (a parsed YAML file)."""
    data = dict(data or {})
    for key in data:
        if key not in _TOP_LEVEL:
            raise ConfigError(f"unknown config key '{key}' (sections: {', '.join(_TOP_LEVEL)})")
    task_options = data.get("task_options") or {}
    if not isinstance(task_options, dict):
        raise ConfigError("config key 'task_options' must be a mapping")
    init_from = data.get("init_from")
    return TrainConfig(
        task=_coerce(data.get("task", "mlm"), str, "task"),
        data=_build_section(DataConfig, data.get("data"), "data"),
        model=_build_model(data.get("model")),
        masking=_build_masking(data.get("masking")),
        optim=_build_section(OptimConfig, data.get("optim"), "optim"),
        trainer=_build_section(TrainerConfig, data.get("trainer"), "trainer"),
        init_from=None if init_from is None else _coerce(init_from, str, "init_from"),
        task_options=dict(task_options),
    )


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse override value {text!r}: {exc}") from exc


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``section.key`` in plain config data, creating sections as needed."""
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override key {key!r} has an empty part")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML), then typed ``values`` by dotted key."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        set_dotted(data, key, _parse_scalar(raw))
    for key, value in (values or {}).items():
        set_dotted(data, key, value)
    return data


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file by path, or by the name of a shipped config (``tiny`` → training/configs/tiny.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / f"{name_or_path}.yaml", CONFIG_DIR / str(name_or_path)):
        if candidate.is_file():
            return candidate
    names = ", ".join(p.stem for p in shipped_configs())
    raise ConfigError(f"config file not found: {name_or_path} (shipped configs: {names})")


def shipped_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml"))


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> TrainConfig:
    """Read a YAML config (default: the shipped ``default.yaml``), then apply ``overrides``
    (``key=value`` strings) and ``values`` (typed, by dotted key)."""
    file = resolve_config_path(path if path is not None else "default")
    data = read_config_data(file)
    try:
        return config_from_dict(apply_overrides(data, overrides, values))
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def read_config_data(file: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's plain data, with ``extends: NAME`` resolved: the named config (a shipped
    config's name, or a path beside this file) is read first and this file's sections are merged
    over it, key by key; a list or a value replaces the parent's whole."""
    if file.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, file.resolve()))
        raise ConfigError(f"config extends itself: {chain}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping of sections, not {type(data).__name__}")
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return data
    if not isinstance(parent_name, str) or not parent_name.strip():
        raise ConfigError(f"{file}: 'extends' must name one config")
    beside = file.parent / parent_name
    try:
        parent_file = beside if beside.is_file() else resolve_config_path(parent_name)
    except ConfigError as exc:
        raise ConfigError(f"{file}: extends {parent_name!r}, which was not found") from exc
    return _merged(read_config_data(parent_file, (*_seen, file.resolve())), data)


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
