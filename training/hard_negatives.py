"""Mined hard negatives for the contrastive stage.

In-batch negatives are codes of other random files (and, with ``same_file_run``, of the same
file): most share no words with the query, so the encoder learns little from them once it can
tell topics apart. A *mined* negative is the code of another file that a lexical search (BM25
over identifier terms) ranks highest for the query: it shares the query's words and still does
not answer it, which is what the search encoder must tell apart when it rereads the top of a
BM25-led candidate list. Pure CPU work over the pairs, no model.

An *encoder-mined* negative (``mine_nearest_negatives``) is the code the encoder being continued
already places nearest the query: the confusions it has now, not the ones BM25 has. The nearest
codes include true answers the pairs do not name (an overload, a copy under another name), so a
candidate scoring within ``margin`` of the query's own positive is passed over (positive-aware
mining, as in NV-Retriever), and the first one below it is taken.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from codemlm.identifiers import identifier_terms

__all__ = ["mine_hard_negative_lists", "mine_hard_negatives", "mine_nearest_negatives"]

_K1 = 1.2
_B = 0.75


def mine_hard_negatives(
    queries: Sequence[str], codes: Sequence[str], groups: Sequence[int], wanted: Sequence[bool] | None = None,
    *, max_df: float = 0.05, depth: int = 20,
) -> list[int]:
    """For each (query, code, group) pair, the index of another pair whose code BM25 ranks
    highest for this pair's query, from another file (``group``), with another code and another
    query (a copied docstring means the same behaviour: no negative); -1 when there is none or
    the pair is not ``wanted`` (default: all). Terms in more than ``max_df`` of the codes are skipped: they rank nothing
    and make the postings long. Deterministic."""
    lists = mine_hard_negative_lists(queries, codes, groups, wanted, count=1, max_df=max_df, depth=depth)
    return [found[0] if found else -1 for found in lists]


def mine_hard_negative_lists(
    queries: Sequence[str], codes: Sequence[str], groups: Sequence[int], wanted: Sequence[bool] | None = None,
    *, count: int, max_df: float = 0.05, depth: int = 20,
) -> list[list[int]]:
    """``mine_hard_negatives`` keeping up to ``count`` negatives per pair, best first, each with
    a code of its own (no two negatives of one pair are the same code)."""
    n = len(queries)
    if not len(codes) == len(groups) == n or (wanted is not None and len(wanted) != n):
        raise ValueError("queries, codes, groups and wanted must have one entry per pair")
    if count < 1:
        raise ValueError("count must be >= 1")
    out: list[list[int]] = [[] for _ in range(n)]
    if n < 2:
        return out
    counts = [Counter(identifier_terms(code)) for code in codes]
    lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
    average = float(lengths.mean()) or 1.0
    df: Counter[str] = Counter()
    for c in counts:
        df.update(c.keys())
    limit = max(2, int(max_df * n))
    docs: dict[str, list[int]] = {}
    weights: dict[str, list[float]] = {}
    for i, c in enumerate(counts):
        norm = _K1 * (1 - _B + _B * lengths[i] / average)
        for term, tf in c.items():
            if df[term] <= limit:
                docs.setdefault(term, []).append(i)
                weights.setdefault(term, []).append(tf * (_K1 + 1) / (tf + norm))
    postings = {
        term: (np.array(docs[term], dtype=np.int64),
               np.array(weights[term], dtype=np.float32) * math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5)))
        for term in docs
    }
    for i, query in enumerate(queries):
        if wanted is not None and not wanted[i]:
            continue
        terms = [t for t in set(identifier_terms(query)) if t in postings]
        if not terms:
            continue
        index = np.concatenate([postings[t][0] for t in terms])
        weight = np.concatenate([postings[t][1] for t in terms])
        candidates, inverse = np.unique(index, return_inverse=True)
        scores = np.bincount(inverse, weights=weight)
        top = np.argsort(-scores, kind="stable")[:depth]
        taken: set[str] = set()
        for j in candidates[top].tolist():
            if groups[j] != groups[i] and codes[j] != codes[i] and queries[j] != query and codes[j] not in taken:
                out[i].append(j)
                taken.add(codes[j])
                if len(out[i]) == count:
                    break
    return out


def mine_nearest_negatives(
    query_vectors: np.ndarray, code_vectors: np.ndarray, queries: Sequence[str],
    codes: Sequence[str], groups: Sequence[int], wanted: Sequence[bool] | None = None,
    *, margin: float = 0.95, depth: int = 30, block: int = 256,
) -> list[int]:
    """For each pair i (query vector i, unit rows), the index of another pair whose code vector
    is nearest to it, from another file, with another code and another query, and scoring below
    ``margin`` times its own code's (``code_vectors[i]``, the positive); -1 when none of the
    ``depth`` nearest qualifies or the pair is not ``wanted``. Deterministic."""
    n = len(queries)
    if not (len(query_vectors) == len(codes) == len(groups) == n == len(code_vectors)) \
            or (wanted is not None and len(wanted) != n):
        raise ValueError("vectors, queries, codes, groups and wanted must have one entry per pair")
    if not 0.0 < margin <= 1.0:
        raise ValueError("margin must be in (0, 1]")
    out = [-1] * n
    rows = [i for i in range(n) if wanted is None or wanted[i]]
    if n < 2 or not rows:
        return out
    import torch  # topk over [block, n] scores on every core (numpy's argpartition uses one)

    code_matrix = torch.from_numpy(np.ascontiguousarray(code_vectors, dtype=np.float32))
    query_matrix = torch.from_numpy(np.ascontiguousarray(query_vectors, dtype=np.float32))
    depth = min(depth, n)
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        scores = query_matrix[chunk] @ code_matrix.T  # [b, n]
        own = scores[torch.arange(len(chunk)), torch.tensor(chunk)]  # [b] each query's positive
        values, indices = scores.topk(depth, dim=1)  # [b, depth], best first
        for row, i in enumerate(chunk):
            ceiling = margin * float(own[row])
            for value, j in zip(values[row].tolist(), indices[row].tolist(), strict=True):
                if value < ceiling and groups[j] != groups[i] and codes[j] != codes[i] and queries[j] != queries[i]:
                    out[i] = j
                    break
    return out
