"""A second look at the top of a search by a contrastively trained encoder.

BM25 and the static token table pick and order candidates in milliseconds without torch, but
a sum of token rows cannot read word order or what a body does; an encoder can. Embedding
every chunk of a repository with it would make indexing minutes instead of seconds, so it
reads only the top ``depth`` results of a search, at query time, and adds ``weight`` times
its cosine to their scores. Weight and depth were chosen on the stdlib validation set
(``training/static_validation.py``), never on a held-out set, and travel with the encoder
(``search_rerank`` in its summary).

The encoder lives in the model directory's ``search_encoder/`` folder: the MLM encoder after
the contrastive stage (``codemlm train --config search-compact``). It is a copy of its own
because the contrastive stage trades away masked-token prediction, which completion needs.

Chunk vectors are cached by text, so an editor's repeated searches embed only code they have
not seen. A model directory may ship more stages, each chosen on validation given the ones
before it: a second, larger search encoder (``search_encoder2/``, the `small` shape started from
the MLM) rereads the top few of the first one's order the same way, and a cross-encoder
(``codemlm.search_cross``) reads the very top last. Loading torch and the weights takes a second
or two, so the language server (its model is warm anyway) uses them by default and ``codemlm
search`` only with ``--rerank``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codemlm.errors import CheckpointError

if TYPE_CHECKING:
    from codemlm.checkpoint import LoadedModel
    from codemlm.index import RepoIndex
    from codemlm.search import SearchResult
    from codemlm.search_cross import CrossScorer

__all__ = ["SEARCH_ENCODER2_DIR", "SEARCH_ENCODER_DIR", "EncoderReranker", "RerankSettings", "has_search_encoder",
           "rescore"]

SEARCH_ENCODER_DIR = "search_encoder"  # a model directory's second encoder, for reranking search
# A larger search encoder (the `small` shape) that rereads the top of the first one's order: it
# costs ~6x more per chunk, so it reads fewer of them (its own depth).
SEARCH_ENCODER2_DIR = "search_encoder2"


@dataclass(frozen=True)
class RerankSettings:
    """How much the encoder's cosine counts (added to the search score) and how deep it reads."""

    weight: float = 3.0
    depth: int = 30
    max_tokens: int = 128  # a chunk's name, signature and the start of its body

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> RerankSettings:
        raw = summary.get("search_rerank") or {}
        if not isinstance(raw, dict):
            raise CheckpointError("search_rerank in the search encoder's config.json must be an object")
        try:
            settings = cls(**{key: raw[key] for key in ("weight", "depth", "max_tokens") if key in raw})
            weight, depth, max_tokens = float(settings.weight), int(settings.depth), int(settings.max_tokens)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid search_rerank settings: {exc}") from exc
        if weight < 0 or depth < 1 or max_tokens < 4:
            raise CheckpointError("search_rerank needs weight >= 0, depth >= 1 and max_tokens >= 4")
        return cls(weight, depth, max_tokens)


def has_search_encoder(model_dir: str | Path, folder: str = SEARCH_ENCODER_DIR) -> bool:
    """Whether ``model_dir`` ships a search encoder (``folder``: the first, or ``SEARCH_ENCODER2_DIR``);
    a cheap check: nothing is loaded."""
    return (Path(model_dir) / folder / "config.json").is_file()


def rescore(results: Sequence[SearchResult], cosines: Sequence[float] | np.ndarray, weight: float) -> list[SearchResult]:
    """``results`` with ``weight * cosine`` added to each score, best first (ties keep their order)."""
    rescored = [replace(r, score=float(r.score + weight * c)) for r, c in zip(results, cosines, strict=True)]
    rescored.sort(key=lambda r: -r.score)
    return rescored


class EncoderReranker:
    """Reorders search results by ``score + weight * cosine(query, chunk)`` under one encoder."""

    def __init__(self, loaded: LoadedModel, settings: RerankSettings | None = None, *, cache_size: int = 50_000,
                 second: EncoderReranker | None = None, cross: CrossScorer | None = None) -> None:
        from codemlm.embedder import ModelEmbedder

        self.settings = settings or RerankSettings.from_summary(loaded.summary)
        self.second = second  # rereads the top second.depth of this encoder's order
        self.cross = cross  # reads the top cross.settings.depth of the encoders' order, last
        self._embedder = ModelEmbedder(loaded, max_tokens=self.settings.max_tokens)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one forward at a time; the cache is shared

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, *, second: bool = True, cross: bool = True) -> EncoderReranker:
        """The search encoder of ``model_dir``, with the second encoder and the cross-encoder it
        ships (unless turned off here: a tool weighing a new one reads the stages before it).
        A CheckpointError when there is no search encoder or any stage is broken."""
        from codemlm.checkpoint import load_model_dir
        from codemlm.search_cross import CrossScorer, has_cross_encoder

        if not has_search_encoder(model_dir):
            raise CheckpointError(f"{model_dir} has no search encoder ({SEARCH_ENCODER_DIR}/); search without reranking")
        root = Path(model_dir)
        reader = cls(load_model_dir(root / SEARCH_ENCODER2_DIR)) \
            if second and has_search_encoder(root, SEARCH_ENCODER2_DIR) else None
        scorer = CrossScorer.from_model_dir(model_dir) if cross and has_cross_encoder(model_dir) else None
        return cls(load_model_dir(root / SEARCH_ENCODER_DIR), second=reader, cross=scorer)

    @property
    def depth(self) -> int:
        return self.settings.depth

    def search(self, index: RepoIndex, query: str, *, k: int = 10, **options: Any) -> list[SearchResult]:
        """``codemlm.search.search`` for the top ``depth`` (or ``k``, if more), reranked, cut to ``k``."""
        from codemlm.search import search

        results = search(index, query, k=max(k, self.depth), **options)
        return self.rerank(index, query, results, k=k)

    def rerank(self, index: RepoIndex, query: str, results: Sequence[SearchResult], *, k: int) -> list[SearchResult]:
        head = list(results[: self.depth])
        if len(head) < 2 or self.settings.weight == 0:
            return list(results)[:k]
        rows = index.chunk_rows([r.chunk_id for r in head])
        text = {r.chunk_id: rows[r.chunk_id].text if r.chunk_id in rows else r.snippet for r in head}
        return self.reorder(query, results, text)[:k]

    def reorder(self, query: str, results: Sequence[SearchResult], text: dict[int, str]) -> list[SearchResult]:
        """``results`` after every stage: this encoder over the top ``depth``, the second encoder
        over the top of that order, the cross-encoder last; ``text`` holds each chunk id's code
        down to ``depth``. Below a stage's depth the order it was given stands."""
        head, tail = list(results[: self.depth]), list(results[self.depth :])
        if len(head) < 2 or self.settings.weight == 0:
            return head + tail
        reread = rescore(head, self.cosines(query, [text[r.chunk_id] for r in head]), self.settings.weight)
        if self.second is not None:
            reread = self.second.reorder(query, reread, text)
        if self.cross is not None and self.cross.settings.weight > 0:
            top, rest = reread[: self.cross.settings.depth], reread[self.cross.settings.depth :]
            scores = self.cross.scores(query, [text[r.chunk_id] for r in top])
            reread = rescore(top, scores, self.cross.settings.weight) + rest
        return reread + tail

    def cosines(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The encoder's cosine between ``query`` and each text ([len(texts)])."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            query_vector = self._embedder.embed_query([query])[0]
            return self._chunk_vectors(texts) @ query_vector

    def _chunk_vectors(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8", "replace"), digest_size=16).digest() for t in texts]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in self._cache}
        if missing:
            fresh = self._embedder.embed_code(list(missing.values()))
            self._cache.update(zip(missing, fresh, strict=True))
        for key in keys:
            self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return np.stack([self._cache[key] for key in keys])
