"""A cross-encoder: the query and a chunk read together, one score for the pair.

The search encoder (``codemlm.search_rerank``) embeds query and chunk apart and compares two
vectors, so no word of the query ever attends to a line of the code. A cross-encoder reads
``<cls> query <sep> chunk <sep>`` as one sequence and a linear head turns its pooled state
into a relevance score: every layer can match the query's words against the body. It costs a
forward pass per (query, chunk) with nothing to cache, so it reads only the few results at the
very top, after the search encoder has reordered them (MonoBERT's cascade).

It lives in the model directory's ``search_cross/`` folder: a model directory like any other
(the ``cross`` training task, ``training/cross_encoder.py``) whose summary carries the head
(``cross_head``: the weight vector, scale folded in) and how much it counts and how deep it
reads (``cross_rerank``: chosen on the stdlib validation set by ``training/search_cross.py``,
never on a held-out set).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codemlm.errors import CheckpointError
from codemlm.hardware import use_bf16

if TYPE_CHECKING:
    import torch

    from codemlm.checkpoint import LoadedModel
    from codemlm.tokenizer import CodeTokenizer

__all__ = ["SEARCH_CROSS_DIR", "CrossScorer", "CrossSettings", "encode_pairs", "has_cross_encoder", "read_cross_head"]

SEARCH_CROSS_DIR = "search_cross"  # a model directory's cross-encoder, for the very top of a search


@dataclass(frozen=True)
class CrossSettings:
    """How much the cross-encoder's score counts, how many results it reads, how much of each."""

    weight: float = 1.0
    depth: int = 10
    max_query_tokens: int = 48
    max_code_tokens: int = 128

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> CrossSettings:
        raw = summary.get("cross_rerank") or {}
        if not isinstance(raw, dict):
            raise CheckpointError("cross_rerank in the cross-encoder's config.json must be an object")
        try:
            weight = float(raw.get("weight", cls.weight))
            depth = int(raw.get("depth", cls.depth))
            query_tokens = int(raw.get("max_query_tokens", cls.max_query_tokens))
            code_tokens = int(raw.get("max_code_tokens", cls.max_code_tokens))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid cross_rerank settings: {exc}") from exc
        if not math.isfinite(weight) or weight < 0 or depth < 1 or query_tokens < 3 or code_tokens < 3:
            raise CheckpointError("cross_rerank needs weight >= 0, depth >= 1 and max_*_tokens >= 3")
        return cls(weight, depth, query_tokens, code_tokens)


def has_cross_encoder(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` ships a cross-encoder (a cheap check: nothing is loaded)."""
    return (Path(model_dir) / SEARCH_CROSS_DIR / "config.json").is_file()


def encode_pairs(tokenizer: CodeTokenizer, queries: Sequence[str], codes: Sequence[str], max_query_tokens: int,
                 max_code_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``<cls> query <sep> code <sep>`` for each (queries[i], codes[i]), each side cut to its
    budget (the query's includes <cls>, the code's its <sep>): (ids Long[N, T], mask Bool[N, T]).
    Training and serving both encode through here, so they read the same sequences."""
    from codemlm.tokenizer import padded_batch

    if len(queries) != len(codes):
        raise ValueError("one query per code")
    clean = [t.encode("utf-8", "replace").decode("utf-8") for t in [*queries, *codes]]
    query_ids = tokenizer.encode_ids_heads(clean[: len(queries)], max(max_query_tokens - 2, 0))
    code_ids = tokenizer.encode_ids_heads(clean[len(queries) :], max(max_code_tokens - 1, 0))  # a long chunk's head only: same ids
    rows = [
        [tokenizer.cls_id, *q.tolist(), tokenizer.sep_id, *c.tolist(), tokenizer.sep_id]
        for q, c in zip(query_ids, code_ids, strict=True)
    ]
    return padded_batch(rows, tokenizer.pad_id)


def read_cross_head(summary: dict[str, Any], dim: int) -> np.ndarray:
    """The head's weight vector ([dim] float32) from a cross-encoder's summary."""
    raw = summary.get("cross_head")
    if not isinstance(raw, dict) or not isinstance(raw.get("weight"), list):
        raise CheckpointError("the cross-encoder's config.json has no cross_head.weight (a list of numbers)")
    try:
        head = np.asarray(raw["weight"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cross_head.weight is not a list of numbers: {exc}") from exc
    if head.shape != (dim,) or not np.isfinite(head).all():
        raise CheckpointError(f"cross_head.weight must hold {dim} finite numbers (the encoder's dim)")
    return head


class CrossScorer:
    """Scores (query, chunk) pairs with a cross-encoder: ``head · embed(<cls> q <sep> c <sep>)``."""

    def __init__(self, loaded: LoadedModel, settings: CrossSettings | None = None, *, batch_size: int = 16,
                 precision: str = "auto") -> None:
        self.loaded = loaded
        # bf16 autocast where the CPU runs it natively, as the search encoder (codemlm.embedder)
        self._device_type = next(loaded.model.parameters()).device.type
        self._bf16 = use_bf16(precision, self._device_type)
        self.settings = settings or CrossSettings.from_summary(loaded.summary)
        self._head = read_cross_head(loaded.summary, int(loaded.config.dim))  # [D], applied in fp32
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one forward at a time

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> CrossScorer:
        from codemlm.checkpoint import load_model_dir

        if not has_cross_encoder(model_dir):
            raise CheckpointError(f"{model_dir} has no cross-encoder ({SEARCH_CROSS_DIR}/)")
        return cls(load_model_dir(Path(model_dir) / SEARCH_CROSS_DIR))

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The relevance of each text to ``query`` ([len(texts)]; comparable across texts only)."""
        import torch

        out = np.zeros(len(texts), dtype=np.float32)
        if not texts:
            return out
        model, s = self.loaded.model, self.settings
        ids, mask = encode_pairs(self.loaded.tokenizer, [query] * len(texts), list(texts), s.max_query_tokens,
                                 s.max_code_tokens)
        order = mask.sum(dim=1).argsort().tolist()  # similar lengths together: less padding
        with self._lock, torch.inference_mode(), torch.autocast(self._device_type, dtype=torch.bfloat16, enabled=self._bf16):
            was_training = model.training
            model.eval()
            try:
                for start in range(0, len(order), self._batch_size):
                    rows = order[start : start + self._batch_size]
                    width = int(mask[rows].sum(dim=1).max())
                    pooled = model.embed(ids[rows, :width], mask[rows, :width])  # [b, D]
                    out[rows] = pooled.float().numpy() @ self._head  # outside autocast: an fp32 dot product
            finally:
                model.train(was_training)
        return out
