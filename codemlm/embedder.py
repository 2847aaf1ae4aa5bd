"""Turning code chunks and search queries into vectors.

``Embedder`` is the seam between the index and whatever produces vectors: the index and
search need a ``model_id`` (vectors are stored per model id, so two models never mix), a
``dim``, a ``dense_weight`` (the dense side's vote in hybrid search; at 0 nothing is
embedded at all) and two batch functions. ``ModelEmbedder`` is the real one, built on
``CodeEncoder.embed`` (mean over real tokens, L2-normalized) and the model's own tokenizer.
``LazyModelEmbedder`` answers the first three from the model directory's files and loads
torch and the weights only on the first call that embeds, so a lexical search never pays
for them. When the directory holds a static token table (``codemlm.static_embedder``), that
table is the embedder: indexing and queries then never import torch at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from codemlm.hardware import use_bf16

if TYPE_CHECKING:  # torch and the checkpoint module stay out of a lexical-only CLI run
    from codemlm.checkpoint import LoadedModel

__all__ = [
    "MLM_ONLY_DENSE_WEIGHT",
    "Embedder",
    "LazyModelEmbedder",
    "ModelEmbedder",
    "dense_weight_for",
    "model_fingerprint",
    "normalize_rows",
    "search_embedder",
]


@runtime_checkable
class Embedder(Protocol):
    """Produces float32 ``[N, dim]`` L2-normalized vectors for code chunks and queries."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def dense_weight(self) -> float:
        """The dense side's vote in hybrid search; at 0 it gets none and nothing is embedded."""
        ...

    def embed_code(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy with unit rows (all-zero rows stay zero rather than becoming NaN)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def model_fingerprint(loaded: LoadedModel) -> str:
    """A short id that changes whenever the weights change (an index built with other
    weights must be rebuilt, and the model directory's name alone cannot tell)."""
    weights = loaded.path / _WEIGHTS_FILE
    if weights.is_file():
        return _file_fingerprint(loaded.config.name, weights)
    digest = hashlib.blake2b(digest_size=8)  # an in-memory model (tests): hash the tensors themselves
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return f"codemlm:{loaded.config.name}:{digest.hexdigest()}"


_WEIGHTS_FILE = "model.safetensors"  # the model directory's layout (codemlm.checkpoint)
_CONFIG_FILE = "config.json"


def _file_fingerprint(config_name: str, weights: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"codemlm:{config_name}:{digest.hexdigest()}"


# The dense side's vote in hybrid search for an encoder trained with MLM alone. Measured: even
# a 0.25 vote from such a model pulled the held-out MRR from 0.343 (BM25) to 0.265, so it only
# appends matches BM25 missed entirely, after BM25's own ranking (BENCHMARKS.md, search).
MLM_ONLY_DENSE_WEIGHT = 0.0


def dense_weight_for(summary: dict | None) -> float:
    """How much hybrid search should trust this model's embeddings: a model directory may
    say so itself (``search_dense_weight`` in its summary); a contrastively trained one gets
    a full vote, an MLM-only one a small one."""
    summary = summary or {}
    if "search_dense_weight" in summary:
        return float(summary["search_dense_weight"])
    return 1.0 if summary.get("task") == "contrastive" else MLM_ONLY_DENSE_WEIGHT


class ModelEmbedder:
    """Embeds with a trained ``CodeEncoder``.

    A chunk is cut to ``max_tokens`` tokens: for a definition that is its name, signature and
    the start of its body, which carry most of what a query asks about, and it keeps the
    cost of one chunk bounded on a laptop CPU. Queries go through the same path, optionally
    behind ``query_prefix`` (empty by default: the contrastive stage trains the two sides
    with the same encoding). Where the CPU runs bf16 natively (``precision="auto"``) the forwards
    run under bf16 autocast, as completion's do: 1.8-3x faster, cosines within 1e-5 of fp32.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int = 32,
        *,
        max_tokens: int = 256,
        query_prefix: str = "",
        device: str | None = None,
        precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.batch_size = batch_size
        self.max_tokens = max(4, min(max_tokens, loaded.config.max_seq_len))
        self.query_prefix = query_prefix
        self.device = device or str(next(self.model.parameters()).device)
        # As for completion (codemlm.infill): bf16 autocast only where the hardware runs it natively.
        self.device_type = self.device.split(":")[0]  # "cuda:0" -> "cuda", as autocast wants it
        self.autocast_bf16 = use_bf16(precision, self.device_type)
        self.dim = int(loaded.config.dim)
        self.model_id = model_fingerprint(loaded)
        self.dense_weight = dense_weight_for(loaded.summary)

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.query_prefix + t for t in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        body = self.max_tokens - 2  # room for <cls> ... <sep>
        # Lone surrogates (undecodable bytes from a command line or a broken file) cannot be tokenized.
        texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        ids = [
            [self.tokenizer.cls_id, *enc.tolist(), self.tokenizer.sep_id]
            for enc in self.tokenizer.encode_ids_heads(texts, body)  # a long chunk's head only: same ids
        ]
        # Batch similar lengths together so short chunks do not pay for a long neighbour's padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
                for start in range(0, len(order), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    width = max(len(ids[i]) for i in rows)
                    batch = torch.full((len(rows), width), self.tokenizer.pad_id, dtype=torch.long)
                    mask = torch.zeros((len(rows), width), dtype=torch.bool)
                    for r, i in enumerate(rows):
                        batch[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                        mask[r, : len(ids[i])] = True
                    vectors = self.model.embed(batch.to(self.device), mask.to(self.device))
                    out[rows] = vectors.float().cpu().numpy()
        finally:
            if was_training:
                self.model.train()
        return normalize_rows(out)


def search_embedder(loaded: LoadedModel) -> Embedder:
    """What an index embeds with for a model already loaded (``LazyModelEmbedder`` decides the
    same for a directory): its static table when the directory ships one, else the encoder."""
    from codemlm.static_embedder import STATIC_FILE, StaticEmbedder

    if (loaded.path / STATIC_FILE).is_file():
        return StaticEmbedder.from_model_dir(loaded.path)
    return ModelEmbedder(loaded)


class LazyModelEmbedder:
    """A model directory as an ``Embedder`` that loads torch and the weights on first use.

    ``dim`` and ``dense_weight`` come from ``config.json`` and ``model_id`` from hashing the
    weights file (the same id ``ModelEmbedder`` gives), so opening an index, and a search the
    dense side has no vote in, never import torch. A broken directory is reported when the
    model is first needed, by ``codemlm.checkpoint``.

    A directory with ``static.safetensors`` embeds with that table instead (``static`` is
    then set): the id, width and dense weight are the table's, and ``embed_*`` never load
    the encoder, which stays reachable through ``model`` for work that needs it.
    """

    def __init__(self, model_dir: str | Path, **embedder_options: Any) -> None:
        from codemlm.errors import CheckpointError
        from codemlm.static_embedder import STATIC_FILE, StaticEmbedder

        self.path = Path(model_dir)
        self.static: StaticEmbedder | None = None
        if (self.path / STATIC_FILE).is_file():
            # A table that does not fit the tokenizer is a CheckpointError here, at open time.
            self.static = StaticEmbedder.from_model_dir(self.path)
        try:
            config = json.loads((self.path / _CONFIG_FILE).read_text(encoding="utf-8"))
            model = config["model"]
            self.dim = int(model["dim"])
            self._config_name = str(model.get("name", "tiny"))
            summary = config.get("summary") or {}
            self.dense_weight = dense_weight_for(summary if isinstance(summary, dict) else {})
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.path / _CONFIG_FILE}: cannot read the model config: {exc}") from exc
        self._options = embedder_options
        self._model_id: str | None = None
        self._loaded: ModelEmbedder | None = None
        if self.static is not None:
            self.dim, self.dense_weight, self._model_id = self.static.dim, self.static.dense_weight, self.static.model_id

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            weights = self.path / _WEIGHTS_FILE
            self._model_id = _file_fingerprint(self._config_name, weights) if weights.is_file() else self.model.model_id
        return self._model_id

    @property
    def model(self) -> ModelEmbedder:
        """The loaded model (torch imported here, once)."""
        if self._loaded is None:
            from codemlm.checkpoint import load_model_dir

            self._loaded = ModelEmbedder(load_model_dir(self.path), **self._options)
        return self._loaded

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        return self.static.embed_code(texts) if self.static is not None else self.model.embed_code(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self.static.embed_query(texts) if self.static is not None else self.model.embed_query(texts)
