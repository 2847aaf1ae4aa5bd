"""Dataclass configs, validated on construction. No torch here, so the CLI stays light.

Model presets follow litgpt's style: a named table of shapes, looked up with
``ModelConfig.from_preset("small")`` and overridden field by field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from codemlm.errors import ConfigError

__all__ = [
    "MASKING_STRATEGIES",
    "MODEL_PRESETS",
    "ChunkingConfig",
    "CorpusConfig",
    "MaskingConfig",
    "ModelConfig",
    "from_dict",
]


# Upper bounds far above any sensible model, low enough that a typo (max_seq_len: 1e9) fails
# here rather than by allocating a rotary table of that length.
_INT_LIMITS = {
    "vocab_size": 1 << 20,
    "dim": 16384,
    "n_layers": 256,
    "n_heads": 256,
    "mlp_hidden": 65536,
    "max_seq_len": 1 << 17,
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the encoder. ``vocab_size`` is taken from the tokenizer at training time."""

    name: str = "tiny"
    vocab_size: int = 16384
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_hidden: int = 128  # hidden width of the gated MLP (per gate)
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    pad_id: int = 0

    def __post_init__(self) -> None:
        # A model directory's config.json is user input: check types and ranges here, once,
        # so a bad file is one clear error instead of a traceback (or a model that silently
        # returns nothing) deep inside torch.
        if not isinstance(self.name, str):
            raise ConfigError(f"model.name must be a string, got {self.name!r}")
        for name, limit in _INT_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"model.{name} must be an integer, got {value!r}")
            if not 0 < value <= limit:
                raise ConfigError(f"model.{name} must be between 1 and {limit}, got {value}")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(f"model.pad_id must be an integer in [0, vocab_size), got {self.pad_id!r}")
        for name in ("rope_theta", "norm_eps", "dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"model.{name} must be a finite number, got {value!r}")
        if self.rope_theta <= 1.0:
            raise ConfigError(f"model.rope_theta must be greater than 1, got {self.rope_theta}")
        if not 0.0 < self.norm_eps < 1.0:
            raise ConfigError(f"model.norm_eps must be in (0, 1), got {self.norm_eps}")
        if self.dim % self.n_heads:
            raise ConfigError(f"model.dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if (self.dim // self.n_heads) % 2:
            raise ConfigError("model head dimension must be even for rotary embeddings")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
        return replace(MODEL_PRESETS[name], **overrides)

    def num_parameters(self) -> int:
        """Parameter count (tied embeddings counted once), computed without torch."""
        per_layer = 4 * self.dim * self.dim + 3 * self.dim * self.mlp_hidden + 2 * self.dim
        head = self.dim * self.dim + self.dim  # MLM head transform + its norm
        return self.vocab_size * self.dim + self.n_layers * per_layer + self.dim + head


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Seconds on a CPU: for tests.
    "tiny": ModelConfig(name="tiny", dim=64, n_layers=2, n_heads=4, mlp_hidden=128, max_seq_len=256),
    # Sized for a 2-core CPU budget of ~10^7 training tokens (Cramming's lesson: at a fixed small
    # budget, tokens/s decides): ~1.9M parameters, half of them the 8k-entry embedding. The CPU
    # recipe's shape and the shipped search encoder's. BENCHMARKS.md has the measurements.
    "compact": ModelConfig(
        name="compact", vocab_size=8192, dim=128, n_layers=4, n_heads=4, mlp_hidden=384, max_seq_len=512
    ),
    # The shipped default, trained on a GPU (~14M parameters with the 8k vocabulary, ~17M with
    # 16k); a completion costs ~0.1 s on two CPU cores.
    "small": ModelConfig(name="small", dim=384, n_layers=6, n_heads=6, mlp_hidden=1024, max_seq_len=512),
    # GPU pretraining (~125M parameters with a 16k vocabulary); head_dim 64 for flash kernels.
    "base": ModelConfig(name="base", dim=768, n_layers=16, n_heads=12, mlp_hidden=2048, max_seq_len=1024),
}

MASKING_STRATEGIES = ("token", "identifier", "ast", "mixed")


@dataclass(frozen=True)
class MaskingConfig:
    """How the collator chooses what to hide.

    ``replacement``: ``"bert"`` is 80% [MASK] / 10% random / 10% kept; ``"mask"`` puts [MASK]
    at every chosen position (better for whole spans of code, per CodeSage); ``"auto"`` uses
    ``bert`` for the ``token`` strategy and ``mask`` for span strategies.
    """

    strategy: str = "mixed"
    rate: float = 0.15
    replacement: str = "auto"
    # Per-sequence choice of strategy under "mixed".
    mixed_weights: dict[str, float] = field(
        default_factory=lambda: {"token": 0.2, "identifier": 0.3, "ast": 0.5}
    )
    # AST-T5-style budget split: a node larger than theta ~ U[min, max] tokens is recursed into.
    ast_theta_min: int = 5
    # 32, not AST-T5's 100: longer whole spans than the holes an editor asks about slowed
    # learning in the masking ablation (benchmarks/results/masking_ablation*.md).
    ast_theta_max: int = 32
    # Relative preference for each span kind class when choosing whole nodes (by kind label).
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {
            "identifier": 1.0,
            "arguments": 1.5,
            "expression": 1.5,
            "statement": 1.0,
            "block": 0.5,
            "definition": 0.3,
            "string_comment": 0.3,
        }
    )
    # Identifier strategy: hide every occurrence of a chosen name in the sequence at once.
    # Off by default: completion ranks names visible in the file higher, so the model should
    # learn to copy them (the ablation favoured it too).
    identifier_all_occurrences: bool = False
    max_span_tokens: int = 24

    def __post_init__(self) -> None:
        if self.strategy not in MASKING_STRATEGIES:
            raise ConfigError(f"masking.strategy must be one of {MASKING_STRATEGIES}, got {self.strategy!r}")
        if not 0.0 < self.rate < 1.0:
            raise ConfigError(f"masking.rate must be in (0, 1), got {self.rate}")
        if self.replacement not in ("auto", "bert", "mask"):
            raise ConfigError(f"masking.replacement must be auto, bert or mask, got {self.replacement!r}")
        unknown = set(self.mixed_weights) - {"token", "identifier", "ast"}
        if unknown or not self.mixed_weights or any(w < 0 for w in self.mixed_weights.values()):
            raise ConfigError(f"masking.mixed_weights invalid: {self.mixed_weights}")
        if sum(self.mixed_weights.values()) <= 0:
            raise ConfigError("masking.mixed_weights must not all be zero")
        if not 1 <= self.ast_theta_min <= self.ast_theta_max:
            raise ConfigError("masking.ast_theta_min must be >= 1 and <= ast_theta_max")
        if self.max_span_tokens < 1:
            raise ConfigError("masking.max_span_tokens must be >= 1")

    def replacement_for(self, strategy: str) -> str:
        if self.replacement != "auto":
            return self.replacement
        return "bert" if strategy == "token" else "mask"


@dataclass(frozen=True)
class ChunkingConfig:
    """How files become training sequences (windows of one file, cut at syntax boundaries)."""

    seq_len: int = 512
    min_tokens: int = 16
    # Look back at most this share of a window for a syntax boundary to cut at.
    boundary_slack: float = 0.25

    def __post_init__(self) -> None:
        if self.seq_len < 8:
            raise ConfigError(f"chunking.seq_len must be >= 8, got {self.seq_len}")
        if not 0 <= self.min_tokens <= self.seq_len:
            raise ConfigError("chunking.min_tokens must be between 0 and seq_len")
        if not 0.0 <= self.boundary_slack < 1.0:
            raise ConfigError("chunking.boundary_slack must be in [0, 1)")


@dataclass(frozen=True)
class CorpusConfig:
    """Filters and split for ``codemlm corpus build``."""

    max_file_bytes: int = 1_000_000
    max_line_length: int = 1000  # longer lines mark a minified or generated file
    min_whitespace_ratio: float = 0.05
    validation_fraction: float = 0.05
    split_by: str = "file"  # "file" or "repo"
    seed: int = 0
    languages: tuple[str, ...] = ()  # empty: every supported language
    # Training wants each text once; a search index wants every copy (both paths can be the answer).
    dedupe: bool = True

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise ConfigError("corpus.max_file_bytes must be positive")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError("corpus.validation_fraction must be in [0, 1)")
        if self.split_by not in ("file", "repo"):
            raise ConfigError(f"corpus.split_by must be 'file' or 'repo', got {self.split_by!r}")


def from_dict(cls: type, data: dict[str, Any] | None) -> Any:
    """Build a config dataclass from a plain mapping, rejecting unknown keys by name."""
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    if "languages" in data and isinstance(data["languages"], list):
        data["languages"] = tuple(data["languages"])
    try:
        return cls(**data)
    except TypeError as exc:  # wrong types that dataclasses reject
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    return asdict(config)
