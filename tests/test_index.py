"""The repository index: chunking, incremental updates, crash safety, rebuilds, concurrency."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codemlm import index as index_module
from codemlm.chunking import chunk_source
from codemlm.embedder import normalize_rows
from codemlm.errors import IndexStoreError
from codemlm.identifiers import identifier_terms
from codemlm.index import IndexDamagedError, RepoIndex, default_index_path
from codemlm.search import search


class HashingEmbedder:
    """A real ``Embedder``: bag of hashed identifier terms, so similar code gets similar vectors.
    Records what it embedded, and can be told to fail on its n-th call."""

    def __init__(
        self, dim: int = 32, model_id: str = "hashing-test", fail_on_call: int | None = None, dense_weight: float = 1.0
    ) -> None:
        self.dim = dim
        self.model_id = model_id
        self.dense_weight = dense_weight
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.embedded: list[str] = []

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in identifier_terms(text):
                bucket = int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim
                out[row, bucket] += 1.0
        return normalize_rows(out)

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("embedder crashed")
        self.embedded.extend(texts)
        return self._vectors(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts)


def write_repo(root: Path) -> Path:
    files = {
        ".gitignore": "ignored_dir/\n*.log.py\n",
        "pkg/geometry.py": '''
            """Shapes."""
            import math


            def circle_area(radius):
                """Area of a circle."""
                return math.pi * radius ** 2


            class Rectangle:
                def __init__(self, width, height):
                    self.width = width
                    self.height = height

                def area(self):
                    return self.width * self.height
            ''',
        "pkg/text_utils.py": '''
            def slugify(title):
                """Turn a title into a URL slug."""
                return "-".join(title.lower().split())


            DEFAULT_SEPARATOR = "-"
            ''',
        "web/fetch.js": """
            function fetchJson(url) {
              return fetch(url).then((response) => response.json());
            }

            const retryCount = 3;
            """,
        "ignored_dir/secret_helper.py": "def hidden_function():\n    return 42\n",
        "debug.log.py": "def also_hidden():\n    pass\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo")


@pytest.fixture
def index_file(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "index.sqlite"


def inspect(index: RepoIndex) -> sqlite3.Connection:
    """A second, independent connection for the test to look inside the file."""
    return sqlite3.connect(index.path)


def names(index: RepoIndex) -> set[tuple[str, str]]:
    with contextlib.closing(inspect(index)) as conn:
        rows = conn.execute("SELECT files.path, chunks.name FROM chunks JOIN files ON files.id = chunks.file_id")
        return {(r[0], r[1]) for r in rows}


def scalar(index: RepoIndex, sql: str) -> object:
    with contextlib.closing(inspect(index)) as conn:
        return conn.execute(sql).fetchone()[0]


# --------------------------------------------------------------------------- pure parts
def test_identifier_terms_split_case_styles() -> None:
    assert identifier_terms("parseHTTPResponse2") == ["parse", "http", "response", "2", "parsehttpresponse2"]
    assert identifier_terms("max_file_bytes") == ["max", "file", "bytes", "maxfilebytes"]
    assert identifier_terms("x = a + 1") == ["1"]  # single letters dropped
    assert identifier_terms("") == []


def test_chunks_are_definitions_plus_top_level_blocks() -> None:
    text = textwrap.dedent(
        '''
        import os

        LIMIT = 10


        def first():
            return 1


        class Box:
            def size(self):
                return LIMIT


        if __name__ == "__main__":
            print(first())
        '''
    ).lstrip("\n")
    chunks = chunk_source(text, "python")
    summary = [(c.kind, c.name, c.start_line, c.end_line) for c in chunks]
    assert ("function", "first", 5, 6) in summary
    assert ("class", "Box", 9, 11) in summary
    assert ("method", "size", 10, 11) in summary
    blocks = [c for c in chunks if c.kind == "block"]
    assert [(b.start_line, b.end_line) for b in blocks] == [(0, 2), (14, 15)]
    data = text.encode()
    for c in chunks:  # byte ranges and text agree
        assert data[c.start_byte : c.end_byte].decode().strip() == c.text.strip()


def test_form_feeds_and_other_separators_do_not_shift_lines(repo: Path, index_file: Path) -> None:
    # The standard library separates sections with form feeds; only "\n" ends a line.
    text = "import os\n\x0c\nLIMIT = 1\n\x0c\ndef first():\n    return 1\n\x0c\nVALUE = 'a\u2028b\x1cc'\n\n\ndef second():\n    return 2\n"
    (repo / "pkg/sections.py").write_text(text, encoding="utf-8")
    chunks = chunk_source(text, "python")
    summary = [(c.kind, c.name, c.start_line, c.end_line) for c in chunks]
    assert summary == [
        ("block", "import os", 0, 2),
        ("function", "first", 4, 5),
        ("block", "VALUE = 'a\u2028b\x1cc'", 7, 7),
        ("function", "second", 10, 11),
    ]
    lines = text.split("\n")
    for c in chunks:  # every chunk's first line is the line tree-sitter numbered
        assert c.text.split("\n")[0] == lines[c.start_line]
        assert text.encode()[c.start_byte : c.end_byte].decode() == c.text
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        [second] = [r for r in search(index, "second", k=20) if r.path == "pkg/sections.py"][:1]
        assert (second.name, second.start_line) == ("second", 10)
        assert "return 1" not in {name for path, name in names(index) if path == "pkg/sections.py"}


def test_glued_names_are_split_with_the_repository_vocabulary(repo: Path, index_file: Path) -> None:
    (repo / "pkg/records.py").write_text(
        "def get_name(obj):\n    return obj.name\n\n\ndef encoding_label(obj):\n    return obj.label\n\n\n"
        "def getencoding(obj):\n    return obj.codec\n"
    )
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        # "get" and "encoding" are words this repository spells out elsewhere, so the glued
        # name is found by its words in any order.
        assert search(index, "encoding to get")[0].name == "getencoding"
        assert search(index, "getencoding")[0].name == "getencoding"


def test_default_index_path_uses_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "c"))
    path = default_index_path(tmp_path / "my repo")
    assert path.parent == tmp_path / "c" / "index"
    assert path.name.startswith("my_repo-") and path.suffix == ".sqlite"
    assert default_index_path(tmp_path / "other") != path
    monkeypatch.delenv("CODEMLM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_index_path(tmp_path / "my repo").parent == tmp_path / "xdg" / "codemlm" / "index"


# --------------------------------------------------------------------------- updates
def test_incremental_update_reembeds_only_changed_files(repo: Path, index_file: Path) -> None:
    embedder = HashingEmbedder()
    with RepoIndex.open(repo, index_path=index_file, embedder=embedder) as index:
        first = index.update()
        assert first.files_indexed == 3 and first.files_removed == 0
        indexed = names(index)
        assert ("pkg/geometry.py", "circle_area") in indexed
        assert ("web/fetch.js", "fetchJson") in indexed
        # .gitignore'd files never reach the index
        assert not any(path.startswith("ignored_dir/") or path == "debug.log.py" for path, _ in indexed)
        assert first.chunks_embedded == len(embedder.embedded) == index.count_chunks()

        embedder.embedded.clear()
        (repo / "pkg/text_utils.py").write_text("def kebab_case(words):\n    return '-'.join(words)\n")
        second = index.update()
        assert (second.files_indexed, second.files_unchanged) == (1, 2)
        assert len(embedder.embedded) == 1 and embedder.embedded[0].startswith("def kebab_case(words):")
        assert ("pkg/text_utils.py", "kebab_case") in names(index)
        assert ("pkg/text_utils.py", "slugify") not in names(index)

        embedder.embedded.clear()
        assert index.update().files_indexed == 0 and embedder.embedded == []

        (repo / "web/fetch.js").unlink()
        third = index.update()
        assert third.files_removed == 1
        assert not any(path == "web/fetch.js" for path, _ in names(index))
        assert search(index, "fetchJson", mode="lexical") == []
        # no orphans in the side tables
        assert scalar(index, "SELECT count(*) FROM embeddings") == index.count_chunks() == index.count_vectors()
        assert scalar(index, "SELECT count(*) FROM chunks_fts") == index.count_chunks()


def test_update_file_and_remove_file_for_editor_buffers(repo: Path, index_file: Path) -> None:
    embedder = HashingEmbedder()
    with RepoIndex.open(repo, index_path=index_file, embedder=embedder) as index:
        index.update()
        index.update_file("pkg/new_module.py", "def unsaved_helper():\n    return 1\n")
        assert ("pkg/new_module.py", "unsaved_helper") in names(index)
        generation, calls = index.generation(), embedder.calls
        index.update_file("pkg/new_module.py", "def unsaved_helper():\n    return 1\n")  # same text: no work
        assert index.generation() == generation and embedder.calls == calls
        index.update_file("notes.txt", "not code")  # no language: ignored
        index.remove_file("pkg/new_module.py")
        assert not any(path == "pkg/new_module.py" for path, _ in names(index))


def test_lexical_only_index_without_embedder(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        assert scalar(index, "SELECT count(*) FROM embeddings") == 0
        results = search(index, "slug from a title")
        assert results[0].name == "slugify"
        assert results[0].dense_rank is None and results[0].lexical_rank == 1


# --------------------------------------------------------------------------- crash safety
def test_every_copy_of_a_duplicated_file_is_indexed(repo: Path, index_file: Path) -> None:
    # A training corpus keeps one copy; a search index must find each path a user may want.
    (repo / "copy").mkdir()
    original = next(p for p in sorted(repo.rglob("*.py")) if "def slugify" in p.read_text())
    (repo / "copy" / original.name).write_text(original.read_text())
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        paths = {path for path, name in names(index) if name == "slugify"}
    assert len(paths) == 2 and f"copy/{original.name}" in paths


def test_exception_from_progress_callback_leaves_a_usable_index(
    repo: Path, index_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "EMBED_BATCH_CHUNKS", 1)  # one file per group

    def interrupt(done: int, total: int, path: str) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder()) as index, pytest.raises(
        KeyboardInterrupt
    ):
        index.update(progress=interrupt)
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder()) as index:
        assert index.rebuilt_reason is None
        assert len(index.file_hashes()) == 2  # the two files committed before the interrupt
        assert search(index, "anything at all") is not None
        resumed = index.update()
        assert resumed.files_indexed == 1 and resumed.files_unchanged == 2
        assert len(index.file_hashes()) == 3


def test_embedder_failure_mid_update_keeps_committed_files(
    repo: Path, index_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "EMBED_BATCH_CHUNKS", 1)
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(fail_on_call=2)) as index:
        with pytest.raises(RuntimeError, match="embedder crashed"):
            index.update()
        # lexical rows first: every file is searchable, one vector made it
        assert len(index.file_hashes()) == 3 and index.count_vectors() == 1
        assert scalar(index, "PRAGMA integrity_check") == "ok"
        assert search(index, "area of a circle", k=3)[0].name == "circle_area"
    embedder = HashingEmbedder()
    with RepoIndex.open(repo, index_path=index_file, embedder=embedder) as index:
        stats = index.update()  # nothing changed on disk; the missing vectors are made now
        assert stats.files_indexed == 0 and stats.chunks_embedded == index.count_chunks() - 1
        assert index.count_vectors() == index.count_chunks() and index.check() is None


# --------------------------------------------------------------------------- other people's files
@pytest.mark.parametrize(
    "content",
    [b"def ok():\n    return 1\n", b"this is not a database, just some bytes\n" * 20, b"SQLite format 3\x00" + b"\x00" * 84],
    ids=["python-source", "text", "sqlite-header-only"],
)
def test_a_file_that_is_not_our_index_is_never_touched(repo: Path, tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "ok.py"
    target.write_bytes(content)
    for rebuild in (False, True):
        with pytest.raises(IndexStoreError, match="not a codemlm index"):
            RepoIndex.open(repo, index_path=target, rebuild=rebuild)
    assert target.read_bytes() == content
    assert not Path(str(target) + "-wal").exists() and not Path(str(target) + "-shm").exists()


def test_another_applications_sqlite_database_is_refused(repo: Path, index_file: Path) -> None:
    index_file.parent.mkdir(parents=True)
    conn = sqlite3.connect(index_file)
    conn.execute("CREATE TABLE users(id INTEGER, name TEXT)")
    conn.execute("CREATE VIEW files AS SELECT * FROM users")
    conn.commit()
    conn.close()
    before = index_file.read_bytes()
    with pytest.raises(IndexStoreError, match="another application"):
        RepoIndex.open(repo, index_path=index_file, rebuild=True)
    assert index_file.read_bytes() == before


def test_fifo_and_directory_at_the_index_path_are_refused_without_blocking(repo: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "index.fifo"
    os.mkfifo(fifo)
    with pytest.raises(IndexStoreError, match="not a regular file"):
        RepoIndex.open(repo, index_path=fifo)  # would hang forever if it were opened
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(IndexStoreError, match="is a directory"):
        RepoIndex.open(repo, index_path=tmp_path)


def test_an_empty_file_becomes_an_index(repo: Path, index_file: Path) -> None:
    index_file.parent.mkdir(parents=True)
    index_file.touch()
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.update().files_indexed == 3
    assert index_file.read_bytes()[68:72] == (0x636D6C6D).to_bytes(4, "big")  # our application_id


# --------------------------------------------------------------------------- our own damage
def test_corrupt_pages_are_detected_and_rebuilt(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
    data = bytearray(index_file.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header (and so our mark), wreck the schema page
    index_file.write_bytes(bytes(data))
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.rebuilt_reason
        assert index.update().files_indexed == 3


def _checkpointed(index_file: Path) -> None:
    with contextlib.closing(sqlite3.connect(index_file)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_damaged_full_text_rows_are_detected(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        assert index.check() is None
        with contextlib.closing(inspect(index)) as conn:
            conn.execute("UPDATE chunks_fts_data SET block = zeroblob(length(block)) WHERE id > 10")
            conn.commit()
        damage = index.check()
        assert damage and "damaged" in damage
        index.rebuild(f"damaged: {damage}")
        assert index.rebuilt_reason and index.count_chunks() == 0
        index.update()
        assert index.check() is None and search(index, "slugify")[0].name == "slugify"


def test_a_bad_embedding_blob_is_damage_not_a_traceback(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder()) as index:
        index.update()
        with contextlib.closing(inspect(index)) as conn:
            conn.execute("UPDATE embeddings SET vector = x'0102' WHERE chunk_id = (SELECT min(chunk_id) FROM embeddings)")
            conn.commit()
        assert "wrong size" in (index.check() or "")
        with pytest.raises(IndexDamagedError, match="wrong size"):
            search(index, "area")


def test_overwritten_pages_make_search_raise_index_damaged(repo: Path, index_file: Path) -> None:
    for i in range(30):
        (repo / f"more/m{i}.py").parent.mkdir(exist_ok=True)
        (repo / f"more/m{i}.py").write_text(f"def helper_{i}(value):\n    return value + {i}\n" * 5)
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
    _checkpointed(index_file)
    data = bytearray(index_file.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # every third page after the schema
        data[start : start + page] = b"\x5a" * page
    index_file.write_bytes(bytes(data))
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.check()
        with pytest.raises(IndexDamagedError):
            for query in ("helper value", "slugify", "circle area", "fetch json"):
                search(index, query)
                index.update()


# --------------------------------------------------------------------------- rebuilds and models
def test_schema_version_and_repo_mismatches_rebuild(repo: Path, index_file: Path, tmp_path: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
        with contextlib.closing(inspect(index)) as conn:
            conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
            conn.commit()
    with pytest.raises(IndexStoreError, match=r"another version of codemlm.*run `codemlm index`"):
        RepoIndex.open(repo, index_path=index_file, read_only=True)  # --no-update: says how to mend it
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert "schema version" in (index.rebuilt_reason or "")
        index.update()
    other = write_repo(tmp_path / "other")
    with RepoIndex.open(other, index_path=index_file) as index:
        assert "another repository" in (index.rebuilt_reason or "")


def test_a_schema_1_index_is_recognised_and_rebuilt(repo: Path, index_file: Path) -> None:
    index_file.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(index_file)) as conn:  # what codemlm 0.1 wrote
        for table in ("files", "chunks", "embeddings"):
            conn.execute(f"CREATE TABLE {table}(id INTEGER)")
        conn.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(name, path, doc, body)")
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"), ("repo_root", str(repo))])
        conn.commit()
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert "schema version 1" in (index.rebuilt_reason or "")
        assert index.update().files_indexed == 3


def test_vectors_are_kept_per_model_and_never_mixed(repo: Path, index_file: Path) -> None:
    first = HashingEmbedder(model_id="a")
    with RepoIndex.open(repo, index_path=index_file, embedder=first) as index:
        index.update()
        chunks = index.count_chunks()
    # A typo in the model path: the CLI opens lexical-only. Nothing is rebuilt or discarded.
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.rebuilt_reason is None and index.update().files_indexed == 0
    # Another model (the editor's) adds its own vectors beside the first model's.
    second = HashingEmbedder(model_id="b", dim=16)
    with RepoIndex.open(repo, index_path=index_file, embedder=second) as index:
        assert index.rebuilt_reason is None
        assert index.update().chunks_embedded == chunks and index.count_vectors() == chunks
        assert {len(r.snippet) > 0 for r in search(index, "area", mode="dense")} == {True}
    # Back to the first model: its vectors are all still there, nothing is embedded again.
    again = HashingEmbedder(model_id="a")
    with RepoIndex.open(repo, index_path=index_file, embedder=again) as index:
        assert index.update().chunks_embedded == 0 and again.embedded == []
        assert index.count_vectors() == chunks
    assert scalar(index, "SELECT count(*) FROM embeddings") == 2 * chunks
    # Same id, other width: that model's old vectors go, the other model's stay.
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="a", dim=8)) as index:
        assert index.count_vectors() == 0
        index.update()
    assert scalar(index, "SELECT count(*) FROM embeddings") == 2 * chunks


def test_no_embedding_work_when_the_dense_side_has_no_vote(repo: Path, index_file: Path) -> None:
    silent = HashingEmbedder(dense_weight=0.0)
    with RepoIndex.open(repo, index_path=index_file, embedder=silent) as index:
        assert index.embedder is None
        stats = index.update()
        assert stats.chunks_embedded == 0 and silent.calls == 0 and silent.embedded == []
        assert search(index, "circle area")[0].name == "circle_area"
    with RepoIndex.open(repo, index_path=index_file, embedder=silent, embed=True) as index:
        assert index.update().chunks_embedded == index.count_chunks()  # asked for (--mode dense)


def test_read_only_index_is_searched_without_writing(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
    _checkpointed(index_file)
    before = index_file.read_bytes()
    with RepoIndex.open(repo, index_path=index_file, read_only=True) as index:
        assert search(index, "slugify")[0].name == "slugify"
        (repo / "pkg/new.py").write_text("def brand_new():\n    pass\n")
        with pytest.raises(IndexStoreError, match="read-only"):
            index.update()
    assert index_file.read_bytes() == before
    with pytest.raises(IndexStoreError, match="no index"):
        RepoIndex.open(repo, index_path=index_file.with_name("missing.sqlite"), read_only=True)


def test_a_locked_index_is_an_error_never_a_rebuild(
    repo: Path, index_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_SECONDS", 0.2)
    holder = sqlite3.connect(index_file, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process mid-write, for longer than we wait
    try:
        with pytest.raises(IndexStoreError, match="cannot"):
            RepoIndex.open(repo, index_path=index_file)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.rebuilt_reason is None and len(index.file_hashes()) == 3  # nothing was lost
    with pytest.raises(IndexStoreError, match="is a directory"):
        RepoIndex.open(repo, index_path=index_file.parent)


# --------------------------------------------------------------------------- concurrency
_WORKER = """
import sys
sys.path.insert(0, {tests!r})
from test_index import HashingEmbedder
from codemlm.index import RepoIndex
with RepoIndex.open({repo!r}, index_path={index!r}, embedder=HashingEmbedder()) as index:
    stats = index.update()
print(stats.files_indexed)
"""


def test_two_processes_updating_at_once_do_not_corrupt(tmp_path: Path, index_file: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    for i in range(40):
        (repo / f"gen/module_{i}.py").parent.mkdir(exist_ok=True)
        (repo / f"gen/module_{i}.py").write_text(
            f"def function_{i}(value):\n    '''Compute thing {i}.'''\n    return value * {i}\n\n\nclass Holder{i}:\n    pass\n"
        )
    script = _WORKER.format(tests=str(Path(__file__).parent), repo=str(repo), index=str(index_file))
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    # Every file indexed exactly once between them (the loser of a race skips the file).
    assert sum(int(out.strip()) for out, _ in outputs) == 43
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder()) as index:
        assert index.rebuilt_reason is None
        conn = inspect(index)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(index.file_hashes()) == 43
        paths = [r[0] for r in conn.execute("SELECT path FROM files")]
        assert len(paths) == len(set(paths))
        per_name = conn.execute("SELECT name, count(*) FROM chunks GROUP BY name, start_line HAVING count(*) > 1")
        duplicated = [r for r in per_name if r[0].startswith("function_")]
        assert duplicated == []
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == index.count_chunks()
        conn.close()
        assert index.update().files_indexed == 0


def test_unsaved_buffers_are_redacted_like_files(repo: Path, index_file: Path) -> None:
    token = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    buffer = f'STRIPE_KEY = "{token}"\n\n\ndef charge(amount):\n    return amount\n'
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update_file("pkg/billing.py", buffer)
        assert ("pkg/billing.py", "charge") in names(index)
        with contextlib.closing(inspect(index)) as conn:
            stored = " ".join(r[0] for r in conn.execute("SELECT text FROM chunks"))
            fts = " ".join(r[0] for r in conn.execute("SELECT body FROM chunks_fts"))
    assert token not in stored and "4ec39hqlyjwdarjtt1zdp7dc" not in fts.lower()


def test_rebuild_empties_the_file_in_place_for_whoever_holds_it_open(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder()) as server:  # the language server
        server.update()
        reader = RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(), read_only=True)
        assert search(reader, "area", mode="dense")
        inode = os.stat(index_file).st_ino
        # `codemlm index --rebuild` with another model, which takes the first model number
        with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="other"), rebuild=True) as cli:
            assert cli.rebuilt_reason == "rebuild requested" and cli.count_chunks() == 0
            assert os.stat(index_file).st_ino == inode  # the same file, not a new one beside a deleted one
            assert server.count_chunks() == 0
            server.update_file("pkg/live.py", "def typed_just_now():\n    pass\n")
            assert ("pkg/live.py", "typed_just_now") in names(cli)
            assert server.count_vectors() == 1 and search(server, "typed just now", mode="dense")[0].name == "typed_just_now"
            # a read-only handle opened before the rebuild follows the renumbered model too
            assert search(reader, "typed just now", mode="dense")[0].name == "typed_just_now"
            reader.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(min_size=1, max_size=3000))
def test_arbitrary_bytes_at_the_index_path_are_never_overwritten(repo: Path, tmp_path_factory, content: bytes) -> None:
    target = tmp_path_factory.mktemp("victim") / "file.bin"
    target.write_bytes(content)
    try:
        with RepoIndex.open(repo, index_path=target):
            pass
    except IndexStoreError:
        assert target.read_bytes() == content
    else:  # only possible for something that is, or could be, ours
        assert content.startswith(b"SQLite format 3\x00")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.binary(min_size=100, max_size=6000), offset=st.integers(min_value=100, max_value=8000))
def test_damage_anywhere_in_our_own_file_is_an_error_or_a_rebuild(
    repo: Path, tmp_path_factory, noise: bytes, offset: int
) -> None:
    target = tmp_path_factory.mktemp("ours") / "index.sqlite"
    with RepoIndex.open(repo, index_path=target) as index:
        index.update()
    _checkpointed(target)
    data = bytearray(target.read_bytes())
    data[offset : offset + len(noise)] = noise
    target.write_bytes(bytes(data[: max(len(data), offset)]))
    try:
        with RepoIndex.open(repo, index_path=target) as index:
            damage = index.check()
            if damage:
                index.rebuild(damage)
            index.update()
            assert search(index, "slugify")[0].name == "slugify"
    except IndexStoreError:
        pass  # e.g. damaged beyond what update can repair in one go: one clear error, no traceback
