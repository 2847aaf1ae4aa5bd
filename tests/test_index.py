"""The repository index: chunking, incremental updates, crash safety, rebuilds, concurrency."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from codemlm import index as index_module
from codemlm.embedder import Embedder, normalize_rows
from codemlm.index import RepoIndex, chunk_source, default_index_path, identifier_terms
from codemlm.search import search


class HashingEmbedder:
    """A real ``Embedder``: bag of hashed identifier terms, so similar code gets similar vectors.
    Records what it embedded, and can be told to fail on its n-th call."""

    def __init__(self, dim: int = 32, model_id: str = "hashing-test", fail_on_call: int | None = None) -> None:
        self.dim = dim
        self.model_id = model_id
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


def names(index: RepoIndex) -> set[tuple[str, str]]:
    rows = index.connection.execute("SELECT files.path, chunks.name FROM chunks JOIN files ON files.id = chunks.file_id")
    return {(r[0], r[1]) for r in rows}


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
        conn = index.connection
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == index.count_chunks()
        assert conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == index.count_chunks()


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
        assert index.connection.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0
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
        assert len(index.file_hashes()) == 1
        assert index.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert search(index, "area of a circle", k=3) is not None


# --------------------------------------------------------------------------- rebuilds
def test_not_an_sqlite_file_is_rebuilt(repo: Path, index_file: Path) -> None:
    index_file.parent.mkdir(parents=True)
    index_file.write_bytes(b"this is not a database, just some bytes\n" * 20)
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert "not an SQLite database" in (index.rebuilt_reason or "")
        index.update()
        assert search(index, "slugify")[0].name == "slugify"


def test_foreign_sqlite_database_is_rebuilt(repo: Path, index_file: Path) -> None:
    index_file.parent.mkdir(parents=True)
    conn = sqlite3.connect(index_file)
    conn.execute("CREATE TABLE users(id INTEGER, name TEXT)")
    conn.execute("CREATE VIEW files AS SELECT * FROM users")
    conn.commit()
    conn.close()
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert "not a codemlm index" in (index.rebuilt_reason or "")
        assert index.update().files_indexed == 3


def test_corrupt_pages_are_detected_and_rebuilt(repo: Path, index_file: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file) as index:
        index.update()
    data = bytearray(index_file.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the schema page
    index_file.write_bytes(bytes(data))
    with RepoIndex.open(repo, index_path=index_file) as index:
        assert index.rebuilt_reason
        assert index.update().files_indexed == 3


def test_schema_version_repo_and_embedder_mismatches_rebuild(repo: Path, index_file: Path, tmp_path: Path) -> None:
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="a")) as index:
        index.update()
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="a")) as index:
        assert index.rebuilt_reason is None and index.count_chunks() > 0
    # another embedder: vectors would be meaningless together
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="b")) as index:
        assert "embedder" in (index.rebuilt_reason or "")
        assert index.count_chunks() == 0
        index.update()
        index.connection.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with RepoIndex.open(repo, index_path=index_file, embedder=HashingEmbedder(model_id="b")) as index:
        assert "schema version" in (index.rebuilt_reason or "")
    other = write_repo(tmp_path / "other")
    with RepoIndex.open(other, index_path=index_file, embedder=HashingEmbedder(model_id="b")) as index:
        assert "another repository" in (index.rebuilt_reason or "")


def test_a_locked_index_is_an_error_never_a_rebuild(
    repo: Path, index_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codemlm.errors import IndexStoreError

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
        conn = index.connection
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(index.file_hashes()) == 43
        paths = [r[0] for r in conn.execute("SELECT path FROM files")]
        assert len(paths) == len(set(paths))
        per_name = conn.execute("SELECT name, count(*) FROM chunks GROUP BY name, start_line HAVING count(*) > 1")
        duplicated = [r for r in per_name if r[0].startswith("function_")]
        assert duplicated == []
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == index.count_chunks()
        assert index.update().files_indexed == 0


def test_fake_embedder_satisfies_the_protocol() -> None:
    assert isinstance(HashingEmbedder(), Embedder)
