"""BM25 from postings held in memory: the very scores FTS5 gives, through adds, removals and rebuilds."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_index import HashingEmbedder, write_repo

from codemlm.bm25 import MAX_CHUNK_ID, MAX_SMALL_SEGMENTS, PostingsBM25, PostingsTooLarge
from codemlm.identifiers import MAX_TERM_CHARS, identifier_terms, terms_text
from codemlm.index import RepoIndex, match_expression
from codemlm.search import hold_postings, query_terms, search

SEARCH_WEIGHTS = (5.0, 1.5, 3.0, 1.0)
WORDS = ["parse", "config", "file", "index", "cache", "ünïcode", "δelta", "x2", "42", "parsefile"]


def _fts_table(weights: tuple[float, ...]) -> tuple[sqlite3.Connection, str]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(name, path, doc, body, tokenize = 'ascii')")
    return conn, ", ".join(str(w) for w in weights)


def _fts_top(conn: sqlite3.Connection, columns: str, terms: list[str], limit: int) -> list[tuple[int, float]]:
    rows = conn.execute(
        f"SELECT rowid, -bm25(t, {columns}) FROM t WHERE t MATCH ? ORDER BY bm25(t, {columns}), rowid LIMIT ?",
        (match_expression(terms), limit),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


column = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
row = st.tuples(column, column, column, column)


@settings(max_examples=60, deadline=None)
@given(
    first=st.lists(row, min_size=1, max_size=25),
    later=st.lists(row, max_size=10),
    removed=st.sets(st.integers(1, 25), max_size=10),
    queries=st.lists(st.lists(st.sampled_from([*WORDS, "absent"]), min_size=1, max_size=4), min_size=1, max_size=4),
    weights=st.sampled_from([SEARCH_WEIGHTS, (1.0, 1.0, 1.0, 1.0), (2.0, 0.5, 1.0, 3.0)]),
    limit=st.integers(1, 12),
    batch=st.integers(1, 7),
    flush=st.sampled_from([1, 5, 40, 1_000_000]),
)
def test_scores_are_fts5s_own_through_adds_and_removals(first, later, removed, queries, weights, limit, batch, flush) -> None:
    conn, columns = _fts_table(weights)
    held = PostingsBM25(weights, max_postings=10_000, flush_postings=flush)
    rows = [(i, *r) for i, r in enumerate(first, start=1)]
    conn.executemany("INSERT INTO t(rowid, name, path, doc, body) VALUES (?, ?, ?, ?, ?)", rows)
    for start in range(0, len(rows), batch):  # several segments, small ones merged past MAX_SMALL_SEGMENTS
        held.add(rows[start : start + batch])
    conn.executemany("DELETE FROM t WHERE rowid = ?", [(i,) for i in removed])
    held.keep_only(np.array([r[0] for r in rows if r[0] not in removed], dtype=np.int64))
    more = [(len(rows) + 5 + i, *r) for i, r in enumerate(later)]  # ids only grow, with gaps
    conn.executemany("INSERT INTO t(rowid, name, path, doc, body) VALUES (?, ?, ?, ?, ?)", more)
    held.add(more)
    assert held.rows == conn.execute("SELECT count(*) FROM t").fetchone()[0]
    for terms in queries:
        assert held.top(terms, limit) == _fts_top(conn, columns, terms, limit)


def test_segments_merge_and_drop_the_removed() -> None:
    held = PostingsBM25(SEARCH_WEIGHTS, max_postings=10_000)
    for i in range(1, MAX_SMALL_SEGMENTS + 2):
        held.add([(i, "parse", "", "", "config file")])
    assert held.postings == 3 * (MAX_SMALL_SEGMENTS + 1)  # one segment now, all live
    held.keep_only(np.array([1, 2], dtype=np.int64))
    assert held.rows == 2 and held.postings == 6  # most postings were dead: merged away
    assert [c for c, _ in held.top(["parse"], 10)] == [1, 2]


def test_adding_an_id_at_or_below_the_held_ones_is_refused() -> None:
    held = PostingsBM25(SEARCH_WEIGHTS, max_postings=100)
    held.add([(3, "a", "", "", "")])
    with pytest.raises(ValueError):
        held.add([(3, "b", "", "", "")])


def test_limits_are_kept_before_anything_is_sized() -> None:
    held = PostingsBM25(SEARCH_WEIGHTS, max_postings=3)
    with pytest.raises(PostingsTooLarge):  # a damaged file's rowid must not size the arrays
        held.add([(MAX_CHUNK_ID + 1, "a", "", "", "")])
    with pytest.raises(PostingsTooLarge):
        held.add([(1, "a b", "", "", "c d")])
    assert held.rows == 0 and held.top(["a"], 5) == []


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80) | st.text(alphabet="aZ_9éİßK\u0301 ", max_size=300))
def test_fts5_ascii_tokens_are_exactly_the_split_terms(text: str) -> None:
    """The ground the exact scores stand on: FTS5 sees our terms as they are, one token each."""
    body = terms_text(text)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'ascii')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    conn.execute("INSERT INTO t(rowid, body) VALUES (1, ?)", (body,))
    tokens = [r[0] for r in conn.execute("SELECT term FROM v ORDER BY offset")]
    assert tokens == body.split()
    assert all(len(term) <= MAX_TERM_CHARS for term in body.split())


def test_long_identifiers_are_cut() -> None:
    name = "a" * 500 + "_b"
    assert identifier_terms(name) == ["a" * MAX_TERM_CHARS, "a" * MAX_TERM_CHARS]


# --------------------------------------------------------------------------- through the index
@pytest.fixture
def two_handles(tmp_path: Path):
    """The writer, and a read-only handle holding postings, as the language server has them."""
    repo = write_repo(tmp_path / "repo")
    writer = RepoIndex.open(repo, index_path=tmp_path / "index.sqlite")
    writer.update()
    reader = RepoIndex.open(repo, index_path=tmp_path / "index.sqlite", read_only=True)
    assert hold_postings(reader)
    yield repo, writer, reader
    reader.close()
    writer.close()


QUERIES = ["circle area", "fetch json url", "slugify a title", "rectangle width height", "separator", "missing words"]


def _same_as_fts5(writer: RepoIndex, reader: RepoIndex) -> None:
    for query in QUERIES:
        terms = query_terms(query)
        assert reader.lexical(terms, SEARCH_WEIGHTS, 50) == writer.lexical(terms, SEARCH_WEIGHTS, 50), query
        held = [(r.path, r.name, r.score) for r in search(reader, query, mode="lexical")]
        assert held == [(r.path, r.name, r.score) for r in search(writer, query, mode="lexical")], query


def test_terms_that_are_not_one_token_go_to_fts5(two_handles) -> None:
    _, writer, reader = two_handles
    for terms in (["Circle", "area"], ["circle-area"], ["rectangle", "x" * 300]):
        assert reader.lexical(terms, SEARCH_WEIGHTS, 20) == writer.lexical(terms, SEARCH_WEIGHTS, 20), terms
    assert reader.lexical(["Circle"], SEARCH_WEIGHTS, 20)  # FTS5 folds ASCII case: found


def test_held_postings_follow_every_write(two_handles) -> None:
    _, writer, reader = two_handles
    _same_as_fts5(writer, reader)
    assert reader.lexical(query_terms("circle area"), SEARCH_WEIGHTS, 5)  # something to compare
    writer.update_file("pkg/geometry.py", "def circle_area(r):\n    return 3 * r * r\n\ndef square_area(side):\n    return side * side\n")
    _same_as_fts5(writer, reader)
    writer.update_file("pkg/new_module.py", 'def fetch_url_json(url):\n    """Fetch json from a url."""\n    return url\n')
    _same_as_fts5(writer, reader)
    writer.remove_file("pkg/text_utils.py")
    _same_as_fts5(writer, reader)
    assert not reader.lexical(query_terms("slugify"), SEARCH_WEIGHTS, 5)


def test_held_postings_start_over_when_another_process_rebuilds(two_handles) -> None:
    repo, writer, reader = two_handles
    reader.lexical(query_terms("circle"), SEARCH_WEIGHTS, 5)
    shutil.rmtree(repo / "web")  # the rebuilt index has fewer chunks, under reissued ids
    with RepoIndex.open(repo, index_path=writer.path, rebuild=True) as other:
        other.update()
    _same_as_fts5(writer, reader)
    assert all(r.path != "web/fetch.js" for r in search(reader, "fetch json url", mode="lexical"))


def test_chunk_ids_are_never_reissued(two_handles) -> None:
    _, writer, _ = two_handles
    highest = max(c for c, _ in writer.lexical(["area"], SEARCH_WEIGHTS, 100))
    writer.update_file("pkg/geometry.py", "def area(r):\n    return r\n")
    assert min(c for c, _ in writer.lexical(["area"], SEARCH_WEIGHTS, 100)) > highest


def test_too_many_postings_leaves_fts5_in_charge(two_handles) -> None:
    _, writer, reader = two_handles
    assert reader.hold_postings(SEARCH_WEIGHTS, max_postings=5) is False
    assert not reader.holds_postings
    _same_as_fts5(writer, reader)
    assert reader.hold_postings(SEARCH_WEIGHTS, max_postings=5) is False  # still refused, at once
    assert reader.hold_postings(SEARCH_WEIGHTS) is True


def test_hybrid_answers_the_same_from_held_postings(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    embedder = HashingEmbedder(dim=64)
    with RepoIndex.open(repo, index_path=tmp_path / "index.sqlite", embedder=embedder) as writer:
        writer.update()
        with RepoIndex.open(repo, index_path=writer.path, embedder=embedder, embed=True, read_only=True) as reader:
            plain = [search(reader, q) for q in QUERIES]
            assert hold_postings(reader)
            assert [search(reader, q) for q in QUERIES] == plain
            assert any(r.dense_rank is not None for results in plain for r in results)
