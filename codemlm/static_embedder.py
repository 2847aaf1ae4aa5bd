"""A static token-embedding table as the first-stage dense embedder (model2vec-style).

``static.safetensors`` in a model directory holds one row per entry of the model's tokenizer
vocabulary (stored as float16, served as float32), distilled at training time
(``training/distill_static.py``: each token through a teacher embedder, then all rows fitted
so that a chunk's mean row points where the teacher's vector of the whole chunk does). A
text's vector is the mean of its tokens' rows, L2-normalised: no network and no torch, so a
repository of 10k chunks is embedded in seconds and a query in well under a millisecond.

A table may also carry **word rows** (metadata ``words``: a list of whole lower-case words,
one row each after the token rows). A text in the "terms" form then adds, for each of its
words in that list, the word's row to the bag of its token rows (fastText-style: a word is its
own row plus its pieces'), so a frequent word gets a meaning of its own while a word the list
lacks still has its pieces.

This module owns the file format (``save_static_table`` writes it, ``StaticEmbedder`` reads
it) and the bag of rows a text reads (``encode_bags``, shared with the fit so training and
serving cannot drift apart). The safetensors metadata says which tokenizer the rows belong to
(vocabulary size and a digest of ``tokenizer.json``: rows of another tokenizer would be
silently meaningless, so a mismatch is refused) and the dense weight measured for hybrid
search when it was distilled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codemlm.errors import CheckpointError
from codemlm.identifiers import identifier_terms
from codemlm.tokenizer import CodeTokenizer

__all__ = [
    "STATIC_FILE",
    "STATIC_FORMAT",
    "TEXT_FORMS",
    "StaticEmbedder",
    "encode_bags",
    "prepare_texts",
    "read_static_metadata",
    "save_static_table",
    "tokenizer_digest",
]

STATIC_FILE = "static.safetensors"
STATIC_FORMAT = "codemlm-static-1"
_TENSOR = "embeddings"
_TOKENIZER_FILE = "tokenizer.json"  # the model directory's layout (codemlm.checkpoint)
# Tokens read per text. The head of a chunk (name, signature, start of the body) says most of
# what a query asks about, and the cap bounds the cost of a huge generated block.
DEFAULT_MAX_TOKENS = 512
# What the table reads: "code", the text as it is; or "terms", its identifiers split into
# lower-case words (``parseConfig(path)`` -> `` parse config parseconfig path``), so that a
# query's words and the code's names meet on the same tokens (a BPE token with a leading
# space, `` parse``, is another row than ``parse`` after ``_`` or ``.``). The table's metadata
# says which form it was fitted on.
TEXT_FORMS = ("code", "terms")


def prepare_texts(texts: Sequence[str], form: str, head_repeat: int = 0) -> list[str]:
    """``texts`` in the form a table reads (``TEXT_FORMS``). With ``head_repeat`` (terms form),
    the terms of a text's first line come that many times more before the whole text's: a
    definition chunk's first line is its signature (its name and parameters), which says most of
    what a query asks, and in a plain mean a long body drowns it (on the stdlib validation set,
    3 extra copies raised the table's own MRR from 0.429 to 0.445). A one-line query is only
    repeated, which leaves its direction as it was."""
    if form == "code":
        return list(texts)
    if form == "terms":
        if head_repeat <= 0:
            return [" " + " ".join(identifier_terms(t)) for t in texts]
        return [" " + " ".join([*identifier_terms(t.split("\n", 1)[0]) * head_repeat, *identifier_terms(t)])
                for t in texts]
    raise CheckpointError(f"unknown static text form {form!r} (one of {', '.join(TEXT_FORMS)})")


def encode_bags(prepared: Sequence[str], tokenizer: CodeTokenizer, words: dict[str, int] | None = None,
                max_tokens: int = DEFAULT_MAX_TOKENS) -> list[np.ndarray]:
    """The table rows each text (already in its form, ``prepare_texts``) reads: its first
    ``max_tokens`` tokens and, with ``words`` (word -> its row, past the token rows; terms form
    only), the row of each of its first ``max_tokens`` words that has one."""
    encoded = [ids[:max_tokens].astype(np.int64) for ids in tokenizer.encode_ids_batch(list(prepared))]
    if not words:
        return encoded
    bags = []
    for text, ids in zip(prepared, encoded, strict=True):
        extra = [row for row in (words.get(w) for w in text.split()[:max_tokens]) if row is not None]
        bags.append(np.concatenate([ids, np.asarray(extra, dtype=np.int64)]) if extra else ids)
    return bags


def tokenizer_digest(tokenizer: CodeTokenizer) -> str:
    """A short digest of the tokenizer's serialized form: which vocabulary the rows index."""
    return hashlib.blake2b(tokenizer.to_str().encode("utf-8"), digest_size=8).hexdigest()


def save_static_table(path: str | Path, table: np.ndarray, tokenizer: CodeTokenizer, metadata: dict[str, Any]) -> Path:
    """Write ``table`` ([vocab, dim]) for ``tokenizer`` with ``metadata`` (values kept as JSON
    strings; ``dense_weight`` is required: the vote hybrid search gives the table). Rows are
    stored as float16: half the size, and cosine ranks do not move at that precision."""
    from safetensors.numpy import save_file

    table = np.ascontiguousarray(table, dtype=np.float16)
    words = metadata.get("words") or []
    if table.ndim != 2 or table.shape[0] != tokenizer.vocab_size + len(words):
        raise CheckpointError(
            f"a static table needs one row per token and per word: shape {table.shape}, "
            f"vocabulary {tokenizer.vocab_size}, words {len(words)}"
        )
    if words and metadata.get("text_form") != "terms":
        raise CheckpointError("word rows need the terms text form")
    if "dense_weight" not in metadata:
        raise CheckpointError("a static table needs a measured dense_weight in its metadata")
    meta = {key: json.dumps(value) for key, value in metadata.items()}
    meta.update(
        format=json.dumps(STATIC_FORMAT),
        vocab_size=json.dumps(tokenizer.vocab_size),
        tokenizer=json.dumps(tokenizer_digest(tokenizer)),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({_TENSOR: table}, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: an index never sees half a table
    return path


def read_static_metadata(path: str | Path) -> dict[str, Any]:
    """What a static table file says about itself (teacher, text form, measured dense weight, ...);
    refuses a file that is not a codemlm static table, as loading it would."""
    return _read_table(Path(path))[1]


def _read_table(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            raw = handle.metadata() or {}
            table = handle.get_tensor(_TENSOR)
        metadata = {key: json.loads(value) for key, value in raw.items()}
    except FileNotFoundError as exc:
        raise CheckpointError(f"no static table at {path}") from exc
    except Exception as exc:  # safetensors raises its own error types (and KeyError) on a bad file
        raise CheckpointError(f"{path}: not a readable static table: {exc}") from exc
    if metadata.get("format") != STATIC_FORMAT:
        raise CheckpointError(f"{path}: not a codemlm static table (format {metadata.get('format')!r})")
    return table, metadata


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    # Same rule as codemlm.embedder.normalize_rows (zero rows stay zero); not imported from
    # there because codemlm.embedder imports this module.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class StaticEmbedder:
    """The ``Embedder`` of a static table: mean of token rows, L2-normalised.

    Build it with ``StaticEmbedder.from_model_dir`` (the table and the tokenizer of one model
    directory) or directly from a table, a tokenizer and the table's metadata. ``dense_weight``
    overrides the measured weight (validation sweeps)."""

    def __init__(
        self,
        table: np.ndarray,
        tokenizer: CodeTokenizer,
        metadata: dict[str, Any],
        *,
        model_id: str,
        dense_weight: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        source: str = "static table",
    ) -> None:
        words = [str(w) for w in metadata.get("words") or []]
        vocab = metadata.get("vocab_size", table.shape[0] - len(words))
        if table.ndim != 2 or table.shape[0] - len(words) != tokenizer.vocab_size or vocab != tokenizer.vocab_size:
            raise CheckpointError(
                f"{source}: the static table has {table.shape[0] - len(words)} token rows for a vocabulary of {vocab} tokens, "
                f"but the model's tokenizer has {tokenizer.vocab_size}; distill it again for this model "
                "(python -m training.distill_static --model-dir DIR)"
            )
        digest = metadata.get("tokenizer")
        if digest is not None and digest != tokenizer_digest(tokenizer):
            raise CheckpointError(
                f"{source}: the static table was distilled for another tokenizer of the same size; "
                "distill it again for this model (python -m training.distill_static --model-dir DIR)"
            )
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.text_form = str(metadata.get("text_form", "code"))
        self.head_repeat = int(metadata.get("head_repeat", 0))
        prepare_texts([], self.text_form)  # an unknown form is refused when the table is opened
        if words and self.text_form != "terms":
            raise CheckpointError(f"{source}: word rows need the terms text form, not {self.text_form!r}")
        self.words = {w: tokenizer.vocab_size + i for i, w in enumerate(words)}
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.tokenizer = tokenizer
        self.metadata = metadata
        self.model_id = model_id
        self.dim = int(table.shape[1])
        self.dense_weight = float(metadata.get("dense_weight", 0.0) if dense_weight is None else dense_weight)
        self.max_tokens = max_tokens

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, table_path: str | Path | None = None, **options: Any) -> StaticEmbedder:
        """The table of ``model_dir`` (or the one at ``table_path``, for one distilled elsewhere)
        with that directory's tokenizer."""
        directory = Path(model_dir)
        path = Path(table_path) if table_path is not None else directory / STATIC_FILE
        table, metadata = _read_table(path)
        tokenizer = CodeTokenizer.from_file(directory / _TOKENIZER_FILE)
        # The id changes with the table's bytes: vectors of an older table are never mixed in.
        digest = hashlib.blake2b(digest_size=8)
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return cls(table, tokenizer, metadata, model_id=f"static:{digest.hexdigest()}", source=str(path), **options)

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Lone surrogates (undecodable bytes from a command line or a broken file) cannot be tokenized.
        clean = prepare_texts([t.encode("utf-8", "replace").decode("utf-8") for t in texts], self.text_form,
                              self.head_repeat)
        encoded = encode_bags(clean, self.tokenizer, self.words, self.max_tokens)
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        filled = lengths > 0
        if filled.any():
            rows = self.table[np.concatenate([ids for ids in encoded if len(ids)])]
            starts = np.concatenate([[0], np.cumsum(lengths[filled])[:-1]])
            # One vectorised sum per text; the mean's 1/n vanishes in the normalisation.
            out[filled] = np.add.reduceat(rows, starts, axis=0)
        return _unit_rows(out)
