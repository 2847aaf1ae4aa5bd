"""Hybrid code search over a ``RepoIndex``: BM25 (FTS5) + dense cosine, fused by score.

Lexical: the query goes through the same identifier splitting as the indexed text and
becomes an OR of quoted terms, so any user text is a valid FTS5 query (no syntax reaches
SQLite). Dense: an exact matrix product against every stored vector; the matrix is loaded
once per index generation behind the ``VectorStore`` seam, where an ANN library can slot in
when an index outgrows exact search. Fusion: each candidate's lexical vote (its BM25 relevance
over the query's best, so 1 for BM25's first) plus ``dense_weight`` times its cosine, over the top
candidates of each side, so a chunk the dense side is sure of can overtake lexical's top hits
(reciprocal rank fusion only let a weak dense side reorder them); every result says where it
ranked on each side (``--explain``). Then the code-aware reranking of ``codemlm.ranking``
(definitions first, names that say what the query says up; tests, generated, vendored and
mirrored copies down). The SQL lives in ``RepoIndex``; this module only asks it.
"""

from __future__ import annotations

import fnmatch
import math
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from codemlm.errors import InputError
from codemlm.identifiers import MAX_TERM_CHARS, identifier_terms
from codemlm.index import IndexSnapshot, RepoIndex, match_expression
from codemlm.languages import get_language
from codemlm.ranking import classify_query, rerank_factor
from codemlm.vectors import ExactVectorStore, VectorStore

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

__all__ = [
    "MODES",
    "RRF_K",
    "ExactVectorStore",
    "SearchResult",
    "VectorStore",
    "check_query",
    "dense_can_read",
    "excluded",
    "fts_query",
    "fuse_scores",
    "hold_postings",
    "lexical_score",
    "lexical_votes",
    "path_matches",
    "query_terms",
    "reciprocal_rank_fusion",
    "search",
]

MODES = ("hybrid", "lexical", "dense")
RRF_K = 60  # reciprocal_rank_fusion's k (kept for callers; search fuses scores)
CANDIDATES = 100  # how deep each side is read before fusion
SNIPPET_LINES = 8
OVERLAP_MIN_VECTORS = 20_000  # from this many stored vectors, hybrid runs its two sides at once
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
def query_terms(query: str) -> list[str]:
    """The terms the lexical side looks for (any of them matches), or [] when nothing
    searchable is left: the query's words and identifier parts but function words, then its
    neighbouring words joined (``_joined``)."""
    terms = list(dict.fromkeys(identifier_terms(query)))
    content = [t for t in terms if t not in _STOPWORDS] or terms
    if not content:
        return []
    return list(dict.fromkeys([*content, *_joined(query)]))


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression for arbitrary text, or None when nothing searchable is left."""
    terms = query_terms(query)
    return match_expression(terms) if terms else None


def hold_postings(index: RepoIndex) -> bool:
    """Answer this index's lexical side from postings held in memory from now on: the same
    results, several times faster on a large index, for a process that searches it again and
    again (the language server). Costs a pass over every chunk's words now (seconds at 100k
    chunks) and memory (75 MB for 117k chunks of real code); False when it would hold too many."""
    return index.hold_postings(_BM25_WEIGHTS)


def _joined(query: str) -> list[str]:
    """Neighbouring words of a query glued together (``as dict`` -> ``asdict``, ``is plain
    object`` -> ``isplainobject``): the joined form of a glued or camelCase name, which the
    index holds as one term. Only for queries of several plain words."""
    words = [w.lower() for w in query.split() if w.isalpha() and w.isascii()]
    if len(words) < 2 or len(words) > 12:
        return []
    return ["".join(words[i : i + n])[:MAX_TERM_CHARS] for n in (2, 3) for i in range(len(words) - n + 1)]


def _lexical(index: RepoIndex, query: str, limit: int) -> list[tuple[int, float]]:
    return index.lexical(query_terms(query), _BM25_WEIGHTS, limit)


# --------------------------------------------------------------------------- filters
def _allowed(
    snapshot: IndexSnapshot, language: str | None, path_glob: str | None, exclude: Sequence[str]
) -> np.ndarray:
    """Chunk ids that pass the filters (decided per file: there are far fewer files)."""
    file_ok = np.fromiter(
        (
            (language is None or lang == language)
            and (path_glob is None or path_matches(path, path_glob))
            and not any(excluded(path, glob) for glob in exclude)
            for path, lang in zip(snapshot.file_paths, snapshot.file_languages, strict=True)
        ),
        dtype=bool,
        count=len(snapshot.file_paths),
    )
    if not file_ok.size:
        return np.zeros(0, dtype=np.int64)
    return snapshot.chunk_ids[file_ok[snapshot.chunk_file]]


def path_matches(path: str, glob: str) -> bool:
    """fnmatch over the whole relative path (``*`` crosses ``/``); ``**/`` may also match no folder,
    so ``src/**/*.py`` takes ``src/a.py`` too, as in .gitignore and most editors."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    return "**/" in glob and fnmatch.fnmatchcase(path, glob.replace("**/", ""))


def excluded(path: str, glob: str) -> bool:
    """``--exclude``: a glob over the whole path, or, without a ``/``, over any one of its
    names, so ``tests`` leaves out every tests folder and ``*.d.ts`` every declaration file."""
    if path_matches(path, glob):
        return True
    return "/" not in glob and any(fnmatch.fnmatchcase(part, glob) for part in path.split("/"))


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


def lexical_score(rank: int, depth: int = CANDIDATES) -> float:
    """A vote by rank (1-based): 1 for the first, down with the log of the rank to 0 just past
    ``depth``; what ``lexical_votes`` falls back to when BM25 gives no positive relevance."""
    return 1.0 - math.log(rank) / math.log(depth + 1)


def lexical_votes(lexical: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """The lexical side's vote for each (chunk, BM25 relevance) candidate, in its order: the
    relevance over the query's best, so a clear lexical winner keeps its lead over the dense
    side and a near tie stays a near tie (on the stdlib validation set this beat a vote by
    rank: hybrid MRR 0.485 against 0.474). Without a positive best, ``lexical_score`` of the rank."""
    best = max((s for _, s in lexical), default=0.0)
    if best <= 0.0:
        return [(c, lexical_score(r)) for r, (c, _) in enumerate(lexical, start=1)]
    return [(c, max(s, 0.0) / best) for c, s in lexical]


def fuse_scores(
    lexical: Sequence[tuple[int, float]], dense: Sequence[tuple[int, float]], dense_weight: float
) -> list[tuple[int, float]]:
    """Score fusion, best first: the lexical vote (``lexical_votes``; 0 when lexical did not
    find it) plus ``dense_weight`` times the cosine (negatives count as 0). A lexical candidate
    outside the dense list gets the lowest cosine on that list, an upper bound on its own, so it
    is not sunk for having been cut. Ties keep lexical's order, then dense's."""
    cosine = {c: max(s, 0.0) for c, s in dense}
    floor = min(cosine.values()) if cosine else 0.0
    scores = {c: vote + dense_weight * cosine.get(c, floor) for c, vote in lexical_votes(lexical)}
    for c, s in cosine.items():
        if c not in scores:
            scores[c] = dense_weight * s
    return sorted(scores.items(), key=lambda pair: -pair[1])


# --------------------------------------------------------------------------- search
_T = TypeVar("_T")
_DENSE_WORKER: tuple[ThreadPoolExecutor, ThreadpoolController] | None = None
_DENSE_WORKER_LOCK = threading.Lock()


def _on_one_blas_thread(controller: ThreadpoolController, work: Callable[[], _T]) -> _T:
    """``work()`` with BLAS on one thread: beside an FTS5 query on a two-core machine, a
    two-thread matrix product fought SQLite for the cores (hybrid p95 26 ms at 94k chunks of
    real code, 18 ms on one thread; BENCHMARKS.md)."""
    with controller.limit(limits=1, user_api="blas"):
        return work()


def _dense_worker() -> tuple[ThreadPoolExecutor, ThreadpoolController]:
    """One thread, made on first use, for the dense side of hybrid searches, and the BLAS
    libraries it limits (found once: finding them scans every loaded library)."""
    global _DENSE_WORKER
    with _DENSE_WORKER_LOCK:
        if _DENSE_WORKER is None:
            from threadpoolctl import ThreadpoolController

            _DENSE_WORKER = (
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="codemlm-dense"),
                ThreadpoolController(),
            )
        return _DENSE_WORKER


_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]")


def dense_can_read(query: str) -> bool:
    """Whether the query has a word the embedders were trained to read: code and English, so a
    run of two or more ASCII letters or digits starting with a letter. A query wholly in another
    script (``значение``, ``数据``) gets only the nearest vectors to byte pieces: on the stdlib
    validation set their best cosine (0.24-0.38) sat among the cosines of right answers
    (5th percentile 0.32), so no cut-off could tell them apart; such a query is answered by
    the lexical side alone, which finds it in comments and strings of that script."""
    return _LATIN_WORD.search(query) is not None


def check_query(query: str, *, language: str | None = None) -> None:
    """Raise ``InputError`` for a query nothing can match (empty, or only symbols) or a
    language name that is not one of ours; ``search`` itself answers those with ``[]``."""
    if language is not None:
        get_language(language)  # UnsupportedLanguageError (an InputError) names the supported ones
    if not query.strip():
        raise InputError("the query is empty; say what to look for, e.g. \"parse the config file\"")
    if fts_query(query) is None:
        raise InputError(
            f"the query {query!r} has nothing to search for (words and names of two or more letters or digits)"
        )


def search(
    index: RepoIndex,
    query: str,
    *,
    k: int = 10,
    language: str | None = None,
    path_glob: str | None = None,
    mode: str = "hybrid",
    dense_weight: float | None = None,
    exclude: Sequence[str] = (),
    rerank: bool = True,
) -> list[SearchResult]:
    """The ``k`` chunks that best answer ``query``. Filters: exact language name (an unknown
    one is an ``InputError``), an fnmatch glob over the repository-relative path (``*``
    crosses ``/``: ``src/*`` is a subtree) and ``exclude`` globs that leave paths out.

    ``dense_weight`` scales the cosine in the fusion (``fuse_scores``); by default the
    embedder's own ``dense_weight`` (an encoder without a contrastive stage ranks code poorly,
    and a vote from it drags hybrid below BM25 alone). ``rerank`` applies the code-aware factors of
    ``codemlm.ranking`` (off only to measure what they do)."""
    if mode not in MODES:
        raise InputError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    if language is not None:
        language = get_language(language).name
    if mode == "dense" and index.embedder is None:
        raise InputError("dense search needs a model: this index is lexical-only (pass --model DIR)")
    if not query.strip():
        return []
    if dense_weight is None:
        dense_weight = float(index.embedder.dense_weight) if index.embedder is not None else 0.0
    # A hybrid search in which the dense side has no vote does not embed the query at all, and
    # neither does a query the embedder cannot read (see ``dense_can_read``).
    wants_dense = (
        index.embedder is not None
        and (mode == "dense" or (mode == "hybrid" and dense_weight > 0))
        and dense_can_read(query)
    )
    filtered = language is not None or path_glob is not None or bool(exclude)
    # The chunk table and vectors are read only when a filter or the dense side needs them:
    # a plain lexical search touches nothing but the full-text index and its own rows.
    snapshot = index.snapshot() if filtered or wants_dense else None
    allowed: np.ndarray | None = None
    if snapshot is not None and filtered:
        allowed = _allowed(snapshot, language, path_glob, exclude)
        if allowed.size == 0:
            return []

    lexical: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    embedder = index.embedder
    pending: Future[list[tuple[int, float]]] | None = None
    if wants_dense and embedder is not None and snapshot is not None and len(snapshot.store):
        store = snapshot.store

        def nearest() -> list[tuple[int, float]]:
            return store.nearest(embedder.embed_query([query])[0], CANDIDATES, allowed)

        # Both sides wait in C (SQLite, the matrix product) without the GIL, so on a large index
        # the dense side runs on another core while FTS5 ranks: a hybrid query then costs the
        # slower side, not both (on a small one the hand-over would cost more than it saves).
        # Postings held in memory score in ~2 ms with the GIL held, and then the dense side is
        # faster on both cores after it (117k chunks of real code: p95 12 ms against 17 ms).
        overlap = mode == "hybrid" and len(store) >= OVERLAP_MIN_VECTORS and not index.holds_postings
        if overlap:
            worker, blas = _dense_worker()
            pending = worker.submit(_on_one_blas_thread, blas, nearest)
        else:
            dense = nearest()
    if mode in ("hybrid", "lexical"):
        # With a filter, read deeper so enough candidates survive it.
        depth = CANDIDATES if allowed is None else CANDIDATES * 20
        try:
            lexical = _lexical(index, query, depth)
        finally:
            if pending is not None:
                dense = pending.result()
        if allowed is not None:
            allowed_set = set(allowed.tolist())
            lexical = [(c, s) for c, s in lexical if c in allowed_set]
        lexical = lexical[:CANDIDATES]

    lexical_rank = {c: r for r, (c, _) in enumerate(lexical, start=1)}
    dense_rank = {c: r for r, (c, _) in enumerate(dense, start=1)}
    if mode == "lexical":
        ranked = fuse_scores(lexical, [], 0.0)
    elif mode == "dense":
        ranked = fuse_scores([], dense, 1.0)
    else:
        ranked = fuse_scores(lexical, dense, dense_weight)
    if rerank:
        heads = index.chunk_rows([c for c, _ in ranked], with_text=False)
        parsed = classify_query(query)
        ranked = sorted(
            ((c, score * rerank_factor(parsed, heads[c].path, heads[c].kind, heads[c].name)) for c, score in ranked if c in heads),
            key=lambda pair: -pair[1],
        )  # stable: equal scores keep the fused order
    rows = index.chunk_rows([c for c, _ in ranked[:k]])
    results = []
    for chunk_id, score in ranked[:k]:
        row = rows.get(chunk_id)
        if row is None:  # removed by another writer between ranking and reading
            continue
        results.append(
            SearchResult(
                path=row.path, name=row.name, kind=row.kind, language=row.language, start_line=row.start_line,
                end_line=row.end_line, score=float(score), snippet=_snippet(row.text),
                lexical_rank=lexical_rank.get(chunk_id), dense_rank=dense_rank.get(chunk_id), chunk_id=chunk_id,
            )
        )
    return results


def _snippet(text: str) -> str:
    lines = text.split("\n")
    head = "\n".join(lines[:SNIPPET_LINES])
    return head + ("\n…" if len(lines) > SNIPPET_LINES else "")
