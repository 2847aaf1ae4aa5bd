"""One exception hierarchy for the library.

The CLI and the language server turn these into one clear message; anything else escaping
the library is a bug.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CodemlmError",
    "ConfigError",
    "CorpusError",
    "EvaluationError",
    "IndexStoreError",
    "InputError",
    "ModelNotFoundError",
    "PositionError",
    "TokenizerError",
    "UnsupportedLanguageError",
]


class CodemlmError(Exception):
    """Base class: every error the library raises on purpose."""


class ConfigError(CodemlmError):
    """A configuration value is invalid (unknown preset, out-of-range rate, bad YAML)."""


class InputError(CodemlmError):
    """Bad user input: a missing path, a binary or oversized file, invalid UTF-8."""


class UnsupportedLanguageError(InputError):
    """No grammar is registered for this file or language name."""


class PositionError(InputError):
    """A line/column or byte position lies outside the document."""


class CorpusError(CodemlmError):
    """The corpus could not be built or read (no sources, unreadable dataset)."""


class TokenizerError(CodemlmError):
    """The tokenizer file is missing, corrupt or lacks the required special tokens."""


class CheckpointError(CodemlmError):
    """A model directory is of the wrong format version, has mismatched shapes or is corrupt."""


class ModelNotFoundError(CheckpointError):
    """No model directory was given and no default model could be found."""


class IndexStoreError(CodemlmError):
    """The search index could not be opened, read or written."""


class EvaluationError(CodemlmError):
    """An evaluation case file is malformed."""
