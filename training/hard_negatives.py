"""Mined hard negatives for the contrastive stage.

In-batch negatives are codes of other random files (and, with ``same_file_run``, of the same
file): most share no words with the query, so the encoder learns little from them once it can
tell topics apart. A *mined* negative is the code of another file that a lexical search (BM25
over identifier terms) ranks highest for the query: it shares the query's words and still does
not answer it, which is what the search encoder must tell apart when it rereads the top of a
BM25-led candidate list. Pure CPU work over the pairs, no model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from codemlm.identifiers import identifier_terms

__all__ = ["mine_hard_negatives"]

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
    n = len(queries)
    if not len(codes) == len(groups) == n or (wanted is not None and len(wanted) != n):
        raise ValueError("queries, codes, groups and wanted must have one entry per pair")
    out = [-1] * n
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
        for j in candidates[top].tolist():
            if groups[j] != groups[i] and codes[j] != codes[i] and queries[j] != query:
                out[i] = j
                break
    return out
