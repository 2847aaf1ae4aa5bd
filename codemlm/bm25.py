"""BM25 over postings held in memory: FTS5's ``bm25()``, answered without walking FTS5.

FTS5 scores every row that matches any query word, one row at a time through its auxiliary
API (~1.5 µs a row on the development machine): a query with a word in a fifth of a 100k-chunk
index spends 20-40 ms there. A warm process (the language server) keeps the same postings in
numpy instead and scores a query word with a few array operations, ~50x faster.

The answer is FTS5's own, not an approximation of it. The index stores each column as words
joined by single spaces and tokenizes with FTS5's ``ascii`` tokenizer, so FTS5's tokens are
exactly ``text.split()`` (``codemlm.identifiers`` makes every term one run of word
characters, lower-case, no longer than ``MAX_TERM_CHARS``). With the same counts, the same
column weights and the formula of SQLite's ``fts5_aux.c`` evaluated in the same order, the
scores agree to the last bit, and a test holds the two to it.

The postings grow by segments: chunk ids only ever increase (``AUTOINCREMENT``), so what a
write added is the rows above the highest id already held, and what it removed is marked dead
(document frequencies count live postings only). Dead postings and small segments are merged
away when they pile up, from the arrays alone.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["K1", "B", "PostingsBM25", "PostingsTooLarge"]

K1 = 1.2  # FTS5's bm25() constants (fts5_aux.c)
B = 0.75
FLUSH_POSTINGS = 1_000_000  # postings per segment while loading: bounds the memory a load needs on top
MAX_SMALL_SEGMENTS = 8  # smaller segments (left by edits) are merged into one past this many
MAX_CHUNK_ID = 100_000_000  # ids only grow (every re-indexed file takes new ones); 9 bytes each are held
DEAD_SHARE_TO_MERGE = 0.25  # a segment is rewritten once this share of its postings is of removed chunks

# (chunk id, name, path, doc, body): the four full-text columns, in the index's column order
FullTextRow = tuple[int, str, str, str, str]


class PostingsTooLarge(Exception):
    """More postings than the holder was allowed to keep; it stays empty and FTS5 answers."""


@dataclass
class _Segment:
    """Postings of some chunks, grouped by term: term ``terms[i]`` occurs in chunks
    ``docs[offsets[i]:offsets[i+1]]`` with weighted frequency ``freqs[...]`` (the column
    weights times the counts, what FTS5's bm25 calls the phrase frequency)."""

    terms: np.ndarray  # Int32[T], sorted, unique
    offsets: np.ndarray  # Int64[T + 1]
    docs: np.ndarray  # Int32[P], chunk ids
    freqs: np.ndarray  # Float32[P]: sums of column weights, exact in float32
    lo: int = 0  # the lowest and highest chunk id in it: a removal elsewhere leaves it alone
    hi: int = -1
    dead: int = 0  # postings of removed chunks

    @classmethod
    def from_pairs(cls, terms: np.ndarray, docs: np.ndarray, freqs: np.ndarray) -> _Segment:
        # Stable: pairs arrive in chunk id order, so each term's chunks stay ascending.
        order = np.argsort(terms, kind="stable")
        terms, docs, freqs = terms[order], docs[order], freqs[order]
        starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]]) if terms.size else np.zeros(0, np.int64)
        offsets = np.r_[starts, terms.size].astype(np.int64)
        docs, freqs = docs.astype(np.int32, copy=False), freqs.astype(np.float32, copy=False)
        lo, hi = (int(docs.min()), int(docs.max())) if docs.size else (0, -1)
        return cls(terms[starts].astype(np.int32), offsets, docs, freqs, lo, hi)

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.terms, term))
        if i == self.terms.size or self.terms[i] != term:
            return _NO_DOCS, _NO_FREQS
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.docs[lo:hi], self.freqs[lo:hi]

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = np.diff(self.offsets)
        return np.repeat(self.terms, counts), self.docs, self.freqs


class _TermIds(dict[str, int]):
    """Word -> term id; a word seen for the first time gets the next id."""

    def __missing__(self, word: str) -> int:
        term = self[word] = len(self)
        return term


@dataclass
class _Batch:
    """Rows being taken in, as flat arrays (a few bytes a posting, not a Python object)."""

    terms: array[int] = field(default_factory=lambda: array("i"))
    docs: array[int] = field(default_factory=lambda: array("i"))
    freqs: array[float] = field(default_factory=lambda: array("f"))
    ids: array[int] = field(default_factory=lambda: array("q"))
    lengths: array[int] = field(default_factory=lambda: array("q"))
    highest: int = 0


def _merged(segments: Sequence[_Segment], alive: np.ndarray) -> _Segment:
    """One segment holding the live postings of ``segments``."""
    parts = [s.pairs() for s in segments]
    terms = np.concatenate([p[0] for p in parts])
    docs = np.concatenate([p[1] for p in parts])
    freqs = np.concatenate([p[2] for p in parts])
    live = alive[docs]
    return _Segment.from_pairs(terms[live], docs[live], freqs[live])


_NO_DOCS = np.zeros(0, dtype=np.int32)
_NO_FREQS = np.zeros(0, dtype=np.float32)


class PostingsBM25:
    """Every term's postings for a set of chunks, scored as FTS5's ``bm25(weights)`` would.

    Not thread-safe: the owner (``RepoIndex``) calls it under its lock."""

    def __init__(self, weights: Sequence[float], *, max_postings: int, flush_postings: int = FLUSH_POSTINGS) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.max_postings = max_postings
        self.flush_postings = flush_postings
        self._term_ids = _TermIds()
        self._segments: list[_Segment] = []
        self._length = np.zeros(0, dtype=np.float64)  # tokens in all columns, by chunk id
        self._alive = np.zeros(0, dtype=bool)  # by chunk id
        self._rows = 0  # live chunks
        self._tokens = 0  # tokens of the live chunks
        self._postings = 0  # held, live or dead
        self.max_id = 0

    def emptied(self) -> PostingsBM25:
        """A holder like this one, holding nothing."""
        return PostingsBM25(self.weights, max_postings=self.max_postings, flush_postings=self.flush_postings)

    # ------------------------------------------------------------------ size
    @property
    def rows(self) -> int:
        return self._rows

    @property
    def postings(self) -> int:
        return self._postings

    def nbytes(self) -> int:
        arrays = sum(s.terms.nbytes + s.offsets.nbytes + s.docs.nbytes + s.freqs.nbytes for s in self._segments)
        # a dict entry with its short str key: ~100 bytes on CPython
        return arrays + self._length.nbytes + self._alive.nbytes + 100 * len(self._term_ids)

    # ------------------------------------------------------------------ writing
    def add(self, rows: Iterable[FullTextRow]) -> int:
        """Take in chunks with ids above every id held; returns how many. Raises
        ``PostingsTooLarge`` past ``max_postings`` (the holder is then to be dropped). Rows are
        taken in batches of ``flush_postings``, each whole: what a failure leaves is consistent,
        and ``max_id`` says where to go on."""
        w_name, w_path, w_doc, w_body = self.weights
        term_ids = self._term_ids
        batch = _Batch()
        added = 0
        for chunk_id, name, path, doc, body in rows:
            if chunk_id <= max(self.max_id, batch.highest):
                raise ValueError(f"chunk {chunk_id} is not above the highest held ({max(self.max_id, batch.highest)})")
            if chunk_id > MAX_CHUNK_ID:  # arrays are indexed by chunk id: a damaged file must not size them
                raise PostingsTooLarge(f"chunk id {chunk_id} is above {MAX_CHUNK_ID:,}")
            name_words, path_words, doc_words, body_words = name.split(), path.split(), doc.split(), body.split()
            # Counted in C; the sums are FTS5's exactly while the weights are sums of powers of
            # two (search's are), whatever order FTS5 adds them in.
            counts = Counter(body_words)
            weighted: dict[str, float] = counts if w_body == 1.0 else {w: n * w_body for w, n in counts.items()}  # type: ignore[assignment]
            for words, weight in ((name_words, w_name), (path_words, w_path), (doc_words, w_doc)):
                for word in words:
                    weighted[word] = weighted.get(word, 0.0) + weight
            batch.terms.fromlist(list(map(term_ids.__getitem__, weighted)))  # new words get the next id
            batch.freqs.fromlist(list(weighted.values()))
            batch.docs.fromlist([chunk_id] * len(weighted))
            batch.ids.append(chunk_id)
            batch.lengths.append(len(name_words) + len(path_words) + len(doc_words) + len(body_words))
            batch.highest = chunk_id
            if self._postings + len(batch.terms) > self.max_postings:
                raise PostingsTooLarge(f"more than {self.max_postings:,} postings")
            if len(batch.terms) >= self.flush_postings:
                added += self._take(batch)
                batch = _Batch()
        added += self._take(batch)
        self._maybe_merge()
        return added

    def _take(self, batch: _Batch) -> int:
        if not batch.ids:
            return 0
        ids = np.frombuffer(batch.ids, dtype=np.int64)
        sizes = np.frombuffer(batch.lengths, dtype=np.int64).astype(np.float64)
        self._grow(batch.highest + 1)
        self._length[ids] = sizes
        self._alive[ids] = True
        self._rows += ids.size
        self._tokens += int(sizes.sum())
        self.max_id = batch.highest
        segment = _Segment.from_pairs(
            np.frombuffer(batch.terms, dtype=np.int32),
            np.frombuffer(batch.docs, dtype=np.int32),
            np.frombuffer(batch.freqs, dtype=np.float32),
        )
        self._segments.append(segment)
        self._postings += segment.docs.size
        return int(ids.size)

    def keep_only(self, chunk_ids: np.ndarray) -> int:
        """Mark every held chunk not in ``chunk_ids`` removed; returns how many were."""
        keep = np.zeros(self._alive.size, dtype=bool)
        known = chunk_ids[(chunk_ids >= 0) & (chunk_ids < self._alive.size)]
        keep[known] = True
        gone = np.flatnonzero(self._alive & ~keep)
        if gone.size == 0:
            return 0
        self._alive[gone] = False
        self._rows -= int(gone.size)
        self._tokens -= int(self._length[gone].sum())
        for segment in self._segments:
            if np.searchsorted(gone, segment.hi, "right") > np.searchsorted(gone, segment.lo, "left"):
                segment.dead = int(np.count_nonzero(~self._alive[segment.docs]))
        self._maybe_merge()
        return int(gone.size)

    def _grow(self, size: int) -> None:
        if size <= self._alive.size:
            return
        capacity = max(size, 2 * self._alive.size)
        self._length = np.concatenate([self._length, np.zeros(capacity - self._length.size)])
        self._alive = np.concatenate([self._alive, np.zeros(capacity - self._alive.size, dtype=bool)])

    def _maybe_merge(self) -> None:
        """A segment mostly of removed chunks is rewritten without them; the small segments
        that edits leave behind are merged into one once there are more than
        ``MAX_SMALL_SEGMENTS``. Memory for either is that of the segments at hand, never all."""
        segments = []
        for segment in self._segments:
            if segment.dead > DEAD_SHARE_TO_MERGE * segment.docs.size:
                segment = _merged([segment], self._alive)
            if segment.docs.size:
                segments.append(segment)
        small = [s for s in segments if s.docs.size < self.flush_postings]
        if len(small) > MAX_SMALL_SEGMENTS:
            segments = [s for s in segments if s.docs.size >= self.flush_postings] + [_merged(small, self._alive)]
        self._segments = segments
        self._postings = sum(int(s.docs.size) for s in segments)

    # ------------------------------------------------------------------ reading
    def top(self, terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 relevance) of the best ``limit`` chunks matching any of ``terms``,
        best first, ties by chunk id: what ``SELECT rowid, -bm25(...) ... MATCH '"t1" OR "t2"
        ...' ORDER BY 2 LIMIT n`` gives, with FTS5's ``K1`` and ``B``."""
        if self._rows == 0 or limit < 1:
            return []
        n_rows, avgdl = float(self._rows), self._tokens / self._rows
        scores = np.zeros(self._alive.size, dtype=np.float64)
        matched = np.zeros(self._alive.size, dtype=bool)
        for word in dict.fromkeys(terms):
            term = self._term_ids.get(word)
            if term is None:
                continue
            docs, freqs = self._live_postings(term)
            if docs.size == 0:
                continue
            idf = math.log((n_rows - docs.size + 0.5) / (docs.size + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            # fts5_aux.c: score += aIDF[i] * ((aFreq[i] * (k1 + 1.0)) / (aFreq[i] + k1 * (1 - b + b * D / avgdl)))
            f = freqs.astype(np.float64)
            scores[docs] += idf * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * self._length[docs] / avgdl)))
            matched[docs] = True
        found = np.flatnonzero(matched)  # ascending chunk ids
        if found.size == 0:
            return []
        found_scores = scores[found]
        if found.size > limit:
            keep = np.argpartition(-found_scores, limit - 1)[:limit]
            # every chunk tied with the cut's score competes for the last places by id
            cut = found_scores[keep].min()
            keep = np.flatnonzero(found_scores >= cut)
            found, found_scores = found[keep], found_scores[keep]
        order = np.lexsort((found, -found_scores))[:limit]
        return [(int(found[i]), float(found_scores[i])) for i in order]

    def _live_postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for segment in self._segments:
            docs, freqs = segment.postings(term)
            if segment.dead and docs.size:
                live = self._alive[docs]
                docs, freqs = docs[live], freqs[live]
            parts.append((docs, freqs))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return _NO_DOCS, _NO_FREQS
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
