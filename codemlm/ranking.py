"""Code-aware reranking of fused search candidates (after Semble's reranker).

Two readings of a query: *symbol-like* (one identifier-shaped token: ``parseConfig``,
``os.path.join``, ``max_retries``) wants the definition of that name; *words* ("parse the
config file") want the code that does it. Either way a definition beats a loose block of
statements that merely uses the words, a definition whose name is made of the query's words
(``parse_config`` for "parse the config file") rises with the share of its name the query
says, and a chunk in a test, a generated file, a vendored
tree or a compiled or mirrored copy (``.d.ts``, ``.pyi``, ``.cjs``, ``dist/``, ``build/``)
ranks below the source it copies. The factors multiply the fused score; they are few and
round on purpose (set by principle and on the stdlib validation set, never fitted to the
held-out sets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import PurePosixPath

from codemlm.identifiers import identifier_terms

__all__ = ["FileRole", "QueryKind", "classify_query", "file_role", "name_cover", "rerank_factor", "stem"]

QueryKind = str  # "symbol" | "words"
FileRole = str  # "source" | "test" | "mirror" | "generated" | "vendored"

_SYMBOL = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)*\(?\)?")

# How far each kind of file is pushed down: its fused score is multiplied by this.
ROLE_FACTORS: dict[str, float] = {"source": 1.0, "test": 0.6, "mirror": 0.5, "generated": 0.5, "vendored": 0.5}
BLOCK_FACTOR = 0.8  # a run of top-level statements, against a definition
EXACT_NAME_FACTOR = 2.0  # a symbol query that names this definition exactly
NAME_HAS_TERMS_FACTOR = 1.25  # every term of the query is in the definition's name
NAME_COVER_BOOST = 0.5  # up to 1.5x more, by the share of the name's words the query holds

_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs", "e2e", "testdata", "fixtures"})
_MIRROR_DIRS = frozenset({"dist", "build", "out", "lib-cov", "coverage", "site-packages", ".next", "target"})
_VENDORED_DIRS = frozenset({"vendor", "vendored", "third_party", "thirdparty", "external", "node_modules", "_vendor", "bower_components"})
_GENERATED_DIRS = frozenset({"generated", "__generated__", "gen", "autogen"})
_MIRROR_SUFFIXES = (".d.ts", ".d.mts", ".d.cts", ".pyi", ".cjs", ".min.js", ".bundle.js", ".js.map")
_GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", ".pb.go", ".pb.cc", ".pb.h", "_generated.go", ".generated.ts", ".g.dart")


@dataclass(frozen=True)
class Query:
    text: str
    kind: QueryKind
    terms: tuple[str, ...]
    symbol: str | None  # the name a symbol query asks for, lower case, without qualifier

    # Worked out once per query, not once per candidate (a search reranks 100-200).
    @cached_property
    def content(self) -> tuple[str, ...]:
        """The terms but numbers."""
        return tuple(t for t in self.terms if not t.isdigit())

    @cached_property
    def content_set(self) -> frozenset[str]:
        return frozenset(self.content)

    @cached_property
    def cover_words(self) -> tuple[frozenset[str], frozenset[str]]:
        """``name_cover``'s view of the content: its words of two letters or more, and their stems."""
        return _cover_words(self.content)


def classify_query(query: str) -> Query:
    """Symbol-like when the whole query is one identifier (optionally qualified, optionally with
    ``()``); words otherwise."""
    text = query.strip()
    terms = tuple(dict.fromkeys(identifier_terms(text)))
    if text and _SYMBOL.fullmatch(text):
        last = re.split(r"\.|::|->", text.rstrip("()"))[-1]
        return Query(text, "symbol", terms, last.lower())
    return Query(text, "words", terms, None)


# The factors are pure functions of strings that recur in every query (each candidate's path
# and name), so they are cached.
_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def file_role(path: str) -> FileRole:
    """What a repository-relative path most likely holds, judged by its name and folders."""
    pure = PurePosixPath(path.lower())
    name = pure.name
    folders = set(pure.parts[:-1])
    if folders & _VENDORED_DIRS:
        return "vendored"
    if name.endswith(_GENERATED_SUFFIXES) or folders & _GENERATED_DIRS or ".generated." in name:
        return "generated"
    if name.endswith(_MIRROR_SUFFIXES) or folders & _MIRROR_DIRS:
        return "mirror"
    stem = name.split(".")[0]
    if (
        folders & _TEST_DIRS
        or stem.startswith("test_")
        or stem.endswith(("_test", "_tests", "_spec"))
        or ".test." in name
        or ".spec." in name
        or stem in ("conftest", "test", "tests")
        or PurePosixPath(path).name.split(".")[0].endswith(("Test", "Tests", "Spec"))  # FooTest.java, BarSpec.kt
    ):
        return "test"
    return "source"


@lru_cache(maxsize=_CACHE)
def stem(word: str) -> str:
    """A light English stem, the same on both sides: ``returns``/``returned``/``returning`` ->
    ``return``, ``parse``/``parsed``/``parses`` -> ``pars``, ``classes`` -> ``class``; short
    words stay whole."""
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def name_cover(query_terms: tuple[str, ...] | list[str], name: str) -> float:
    """The share of ``name``'s words (its identifier parts, stemmed) that the query holds; a
    glued word of the name (``isdown``, ``getencoding``) counts when it is made of query words,
    in any order (``encoding to get``)."""
    return _cover_share(name, *_cover_words(query_terms))


def _cover_words(query_terms: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    terms = frozenset(t for t in query_terms if len(t) > 1)
    return terms, frozenset(stem(t) for t in terms)


def _cover_share(name: str, terms: frozenset[str], said: frozenset[str]) -> float:
    parts = _name_words(name)
    if not parts:
        return 0.0
    return sum(stem(w) in said or _made_of(w, terms) for w in parts) / len(parts)


@lru_cache(maxsize=_CACHE)
def _name_terms(name: str) -> frozenset[str]:
    return frozenset(identifier_terms(name))


@lru_cache(maxsize=_CACHE)
def _name_words(name: str) -> tuple[str, ...]:
    """A name's identifier parts, without digits and without the glued form identifier_terms
    adds for exact lookups."""
    parts = identifier_terms(name)
    if len(parts) > 1 and parts[-1] == "".join(parts[:-1]):
        parts = parts[:-1]
    return tuple(t for t in parts if not t.isdigit())


def _made_of(word: str, terms: frozenset[str]) -> bool:
    """Whether ``word`` is two or more of ``terms`` glued together (word-break over the query's
    own words)."""
    if len(word) < 4 or not terms:
        return False
    # Most words of most names start or end with no query word: answered without the table.
    if not any(word.startswith(t) for t in terms) or not any(word.endswith(t) for t in terms):
        return False
    longest = max(map(len, terms))
    pieces = [0] * (len(word) + 1)  # pieces[i]: fewest terms that make word[:i] (0: none do, but pieces[0])
    for end in range(2, len(word) + 1):
        best = 0
        for start in range(max(0, end - longest), end - 1):
            if (start == 0 or pieces[start]) and word[start:end] in terms:
                count = (pieces[start] if start else 0) + 1
                best = count if best == 0 else min(best, count)
        pieces[end] = best
    return pieces[len(word)] >= 2


def rerank_factor(query: Query, path: str, kind: str, name: str) -> float:
    """The multiplier for one candidate chunk's fused score."""
    factor = ROLE_FACTORS[file_role(path)]
    definition = kind != "block"
    if not definition:
        return factor * BLOCK_FACTOR
    if query.symbol is not None and name.lower() == query.symbol:
        factor *= EXACT_NAME_FACTOR
    elif query.content and query.content_set <= _name_terms(name):
        factor *= NAME_HAS_TERMS_FACTOR  # the name says all the query says ...
    return factor * (1.0 + NAME_COVER_BOOST * _cover_share(name, *query.cover_words))  # ... and the query all the name says
