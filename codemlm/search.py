"""Hybrid code search over a ``RepoIndex``: BM25 (FTS5) + dense cosine, fused by reciprocal rank.

Lexical: the query goes through the same identifier splitting as the indexed text and
becomes an OR of quoted terms, so any user text is a valid FTS5 query (no syntax reaches
SQLite). Dense: an exact matrix product against every stored vector; the matrix is loaded
once per index generation behind the ``VectorStore`` seam, where an ANN library can slot in
when an index outgrows exact search. Fusion: RRF with k = 60 over the top candidates of
each side; every result says where it ranked on each side (``--explain``).
"""

from __future__ import annotations

import fnmatch
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from codemlm.errors import InputError
from codemlm.index import RepoIndex, identifier_terms

__all__ = [
    "MODES",
    "RRF_K",
    "ExactVectorStore",
    "SearchResult",
    "VectorStore",
    "fts_query",
    "path_matches",
    "reciprocal_rank_fusion",
    "search",
]

MODES = ("hybrid", "lexical", "dense")
RRF_K = 60
CANDIDATES = 100  # how deep each side is read before fusion
SNIPPET_LINES = 8
# Function words that would make an OR query match nearly every chunk (and cost time doing it).
_STOPWORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in", "is",
     "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where", "which",
     "who", "why", "will", "with")
)
# BM25 column weights: name, path, docstring, body.
_BM25_WEIGHTS = (5.0, 1.5, 3.0, 1.0)


@dataclass
class SearchResult:
    path: str
    name: str
    kind: str
    language: str
    start_line: int  # 0-based, end inclusive
    end_line: int
    score: float
    snippet: str
    lexical_rank: int | None  # 1-based rank on the BM25 side, None if not among its candidates
    dense_rank: int | None
    chunk_id: int = 0


# --------------------------------------------------------------------------- lexical side
def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression for arbitrary text, or None when nothing searchable is left."""
    terms = list(dict.fromkeys(identifier_terms(query)))
    content = [t for t in terms if t not in _STOPWORDS] or terms
    if not content:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in content)


def _lexical(index: RepoIndex, query: str, limit: int) -> list[int]:
    expression = fts_query(query)
    if expression is None:
        return []
    weights = ", ".join(str(w) for w in _BM25_WEIGHTS)
    with index.lock:
        rows = index.connection.execute(
            f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts, {weights}) LIMIT ?",
            (expression, limit),
        ).fetchall()
    return [int(r[0]) for r in rows]


# --------------------------------------------------------------------------- dense side
class VectorStore(Protocol):
    """Nearest chunks to a query vector. ``allowed`` restricts to those chunk ids."""

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...

    def __len__(self) -> int: ...


class ExactVectorStore:
    """All vectors in one float32 matrix; cosine = dot product of unit vectors."""

    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        self.ids = ids.astype(np.int64)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if len(self) == 0 or k <= 0:
            return []
        scores = self.matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is not None:
            scores = np.where(np.isin(self.ids, allowed), scores, -np.inf)
        k = min(k, len(self))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


@dataclass
class _Snapshot:
    generation: int
    store: ExactVectorStore
    chunk_ids: np.ndarray  # Int64[C], every chunk, for filters
    chunk_file: np.ndarray  # Int64[C], index into file_paths / file_languages
    file_paths: list[str]
    file_languages: list[str]

    def allowed(self, language: str | None, path_glob: str | None) -> np.ndarray:
        """Chunk ids that pass the filters (decided per file: there are far fewer files)."""
        file_ok = np.fromiter(
            (
                (language is None or lang == language) and (path_glob is None or path_matches(path, path_glob))
                for path, lang in zip(self.file_paths, self.file_languages, strict=True)
            ),
            dtype=bool,
            count=len(self.file_paths),
        )
        if not file_ok.size:
            return np.zeros(0, dtype=np.int64)
        return self.chunk_ids[file_ok[self.chunk_file]]


_SNAPSHOTS: weakref.WeakKeyDictionary[RepoIndex, _Snapshot] = weakref.WeakKeyDictionary()


def _snapshot(index: RepoIndex) -> _Snapshot:
    """The index's vectors and chunk table, reloaded only when another write happened."""
    generation = index.generation()
    cached = _SNAPSHOTS.get(index)
    if cached is not None and cached.generation == generation:
        return cached
    with index.lock:
        conn = index.connection
        conn.execute("BEGIN")  # one consistent read of both tables
        try:
            generation = index.generation()
            files = conn.execute("SELECT id, path, language FROM files").fetchall()
            table = conn.execute("SELECT id, file_id FROM chunks").fetchall()
            vectors = conn.execute("SELECT chunk_id, vector FROM embeddings ORDER BY chunk_id").fetchall()
        finally:
            conn.execute("COMMIT")
    dim = index.embedder.dim if index.embedder else 0
    position = {r[0]: i for i, r in enumerate(files)}
    ids = np.fromiter((r[0] for r in vectors), dtype=np.int64, count=len(vectors))
    if vectors and dim:
        matrix = np.frombuffer(b"".join(r[1] for r in vectors), dtype=np.float32).reshape(len(vectors), dim)
    else:
        matrix = np.zeros((0, max(dim, 1)), dtype=np.float32)
    snapshot = _Snapshot(
        generation=generation,
        store=ExactVectorStore(ids, matrix),
        chunk_ids=np.fromiter((r[0] for r in table), dtype=np.int64, count=len(table)),
        chunk_file=np.fromiter((position[r[1]] for r in table), dtype=np.int64, count=len(table)),
        file_paths=[r[1] for r in files],
        file_languages=[r[2] for r in files],
    )
    _SNAPSHOTS[index] = snapshot
    return snapshot


def path_matches(path: str, glob: str) -> bool:
    """fnmatch over the whole relative path (``*`` crosses ``/``); ``**/`` may also match no folder,
    so ``src/**/*.py`` takes ``src/a.py`` too, as in .gitignore and most editors."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    return "**/" in glob and fnmatch.fnmatchcase(path, glob.replace("**/", ""))


# --------------------------------------------------------------------------- fusion
def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Sum of weight / (k + rank) over the rankings each id appears in (rank 1-based), best
    first. Ties keep the order of first appearance, so the result is deterministic."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


# --------------------------------------------------------------------------- search
def search(
    index: RepoIndex,
    query: str,
    *,
    k: int = 10,
    language: str | None = None,
    path_glob: str | None = None,
    mode: str = "hybrid",
    dense_weight: float | None = None,
) -> list[SearchResult]:
    """The ``k`` chunks that best answer ``query``. Filters: exact language name, and an
    fnmatch glob over the repository-relative path (``*`` crosses ``/``: ``src/*`` is a subtree).

    ``dense_weight`` scales the dense side of the fusion; by default the embedder's own
    ``dense_weight`` (an encoder without a contrastive stage ranks code poorly, and an equal
    vote from it drags hybrid below BM25 alone)."""
    if mode not in MODES:
        raise InputError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    if mode == "dense" and index.embedder is None:
        raise InputError("dense search needs a model: this index is lexical-only (pass --model DIR)")
    if not query.strip():
        return []
    snapshot = _snapshot(index)
    allowed: np.ndarray | None = None
    if language is not None or path_glob is not None:
        allowed = snapshot.allowed(language, path_glob)
        if allowed.size == 0:
            return []

    lexical: list[int] = []
    dense: list[tuple[int, float]] = []
    if mode in ("hybrid", "lexical"):
        # With a filter, read deeper so enough candidates survive it.
        depth = CANDIDATES if allowed is None else CANDIDATES * 20
        lexical = _lexical(index, query, depth)
        if allowed is not None:
            allowed_set = set(allowed.tolist())
            lexical = [c for c in lexical if c in allowed_set]
        lexical = lexical[:CANDIDATES]
    if mode in ("hybrid", "dense") and index.embedder is not None and len(snapshot.store):
        vector = index.embedder.embed_query([query])[0]
        dense = snapshot.store.nearest(vector, CANDIDATES, allowed)

    lexical_rank = {c: r for r, c in enumerate(lexical, start=1)}
    dense_rank = {c: r for r, (c, _) in enumerate(dense, start=1)}
    if mode == "lexical":
        ranked = [(c, 1.0 / (RRF_K + r)) for c, r in lexical_rank.items()]
    elif mode == "dense":
        ranked = dense
    else:
        if dense_weight is None:
            dense_weight = float(getattr(index.embedder, "dense_weight", 1.0))
        ranked = reciprocal_rank_fusion([lexical, [c for c, _ in dense]], weights=[1.0, dense_weight])
    top = ranked[:k]
    rows = _chunk_rows(index, [c for c, _ in top])
    results = []
    for chunk_id, score in top:
        row = rows.get(chunk_id)
        if row is None:  # removed by another writer between ranking and reading
            continue
        path, name, kind, lang, start, end, text = row
        results.append(
            SearchResult(
                path=path, name=name, kind=kind, language=lang, start_line=start, end_line=end,
                score=float(score), snippet=_snippet(text), lexical_rank=lexical_rank.get(chunk_id),
                dense_rank=dense_rank.get(chunk_id), chunk_id=chunk_id,
            )
        )
    return results


def _chunk_rows(index: RepoIndex, chunk_ids: list[int]) -> dict[int, tuple]:
    if not chunk_ids:
        return {}
    marks = ",".join("?" * len(chunk_ids))
    with index.lock:
        rows = index.connection.execute(
            "SELECT chunks.id, files.path, chunks.name, chunks.kind, files.language, chunks.start_line,"
            f" chunks.end_line, chunks.text FROM chunks JOIN files ON files.id = chunks.file_id WHERE chunks.id IN ({marks})",
            chunk_ids,
        ).fetchall()
    return {int(r[0]): tuple(r[1:]) for r in rows}


def _snippet(text: str) -> str:
    lines = text.splitlines()
    head = "\n".join(lines[:SNIPPET_LINES])
    return head + ("\n…" if len(lines) > SNIPPET_LINES else "")
