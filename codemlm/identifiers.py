"""From code text to search terms: identifiers split into words, glued names split by vocabulary.

The index and the query go through the same functions, so a query in words meets code in
identifiers. ``parseHTTPResponse2`` splits at its humps on its own; ``asdict`` or
``isinstance`` carry no boundary, so they are split against the words the repository itself
spells out elsewhere (``as_tuple``, ``dict_items``): a project's own vocabulary, not a
dictionary's, decides where a glued name breaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["GLUED_MIN_LENGTH", "MAX_TERM_CHARS", "glued_words", "identifier_terms", "spelled_out_words", "split_glued", "terms_text"]

_IDENTIFIER = re.compile(r"[^\W\d]\w*|\d+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
GLUED_MIN_LENGTH = 5  # shorter glued names rarely hide two words, and splitting them is mostly noise
GLUED_MAX_LENGTH = 40  # the split is quadratic in the length; longer "names" are data, not words
_PART_MIN_LENGTH = 2
# Terms are cut to this many characters: longer runs are data (hashes, base64), and FTS5 cuts
# tokens at 32 KiB of UTF-8 on its own, which would part the index from its in-memory postings.
MAX_TERM_CHARS = 200


def _parts(word: str) -> list[str]:
    parts: list[str] = []
    for piece in word.split("_"):
        if piece.isascii():
            parts.extend(_CAMEL_PART.findall(piece))
        elif piece:
            parts.append(piece)
    return parts


def identifier_terms(text: str) -> list[str]:
    """Lower-case search terms: identifiers split at ``_``, camelCase humps and digits.

    ``parseHTTPResponse2`` -> ``parse http response 2 parsehttpresponse2``: the parts let a
    natural-language query match code, the joined form keeps exact identifier lookups sharp.
    Single letters are dropped (loop variables are noise, not signal). Each term is one run of
    word characters with no ``_`` and no ASCII capital, at most ``MAX_TERM_CHARS`` long: what
    FTS5's ``ascii`` tokenizer keeps as one token, unchanged (see ``codemlm.bm25``).
    """
    terms: list[str] = []
    for word in _IDENTIFIER.findall(text):
        parts = _parts(word)
        lowered = [p.lower()[:MAX_TERM_CHARS] for p in parts if len(p) > 1 or p.isdigit()]
        terms.extend(lowered)
        if len(parts) > 1:
            terms.append("".join(parts).lower()[:MAX_TERM_CHARS])
    return terms


def terms_text(text: str) -> str:
    return " ".join(identifier_terms(text))


def spelled_out_words(text: str) -> set[str]:
    """Words the text itself separates: the parts of identifiers that have more than one part
    (``as_tuple`` gives ``as`` and ``tuple``). These make the vocabulary for ``split_glued``."""
    words: set[str] = set()
    for word in _IDENTIFIER.findall(text):
        parts = _parts(word)
        if len(parts) > 1:
            words.update(p.lower() for p in parts if len(p) >= _PART_MIN_LENGTH and p.isalpha() and p.isascii())
    return words


def split_glued(term: str, vocabulary: frozenset[str] | set[str]) -> list[str]:
    """``asdict`` -> ``["as", "dict"]`` when both are in ``vocabulary``; ``[]`` when the term
    is short, already a vocabulary word, or has no split into known words. Of all splits the
    one with the fewest parts wins (longer words are likelier meant), ties to the longest head."""
    if len(term) < GLUED_MIN_LENGTH or len(term) > GLUED_MAX_LENGTH or not term.isascii() or not term.isalpha():
        return []
    if term in vocabulary:
        return []
    return list(_split(term, vocabulary))


def _split(term: str, vocabulary: frozenset[str] | set[str]) -> tuple[str, ...]:
    n = len(term)
    # best[i]: the fewest-parts split of term[i:], or None when there is none
    best: list[tuple[str, ...] | None] = [None] * (n + 1)
    best[n] = ()
    for i in range(n - _PART_MIN_LENGTH, -1, -1):
        for j in range(n, i + _PART_MIN_LENGTH - 1, -1):  # longest head first
            rest = best[j]
            if rest is None or term[i:j] not in vocabulary:
                continue
            candidate = (term[i:j], *rest)
            current = best[i]
            if current is None or len(candidate) < len(current):
                best[i] = candidate
    found = best[0]
    return found if found is not None and len(found) > 1 else ()


def glued_words(terms: Iterable[str], vocabulary: frozenset[str] | set[str]) -> list[str]:
    """The words hidden in each glued term of ``terms`` (each term split at most once)."""
    out: list[str] = []
    for term in dict.fromkeys(terms):
        out.extend(split_glued(term, vocabulary))
    return out
