"""The repository index: one SQLite file per repository, shared by the CLI and the language server.

Tables: ``meta`` (schema version, embedder id and width, repository root, a generation counter
that every write bumps so readers know when their cached matrix is stale), ``files`` (path,
language, content hash, mtime, size), ``chunks`` (definitions and top-level blocks),
``chunks_fts`` (FTS5 over identifier-split text: name, path, docstring, body) and
``embeddings`` (chunk id -> float32 blob).

Safety: WAL journal, a 30 s busy timeout and ``BEGIN IMMEDIATE`` around every write, and one
transaction per file, so a crash or Ctrl-C mid-update leaves every file either fully old or
fully new and two processes updating at once serialize instead of corrupting each other.
Anything that is not our index (not SQLite, another schema version, another repository,
vectors from another embedder) is rebuilt, and the reason is logged and kept in
``RepoIndex.rebuilt_reason`` for the CLI to print.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codemlm.cache import cache_dir
from codemlm.config import CorpusConfig
from codemlm.embedder import Embedder
from codemlm.errors import IndexStoreError, InputError

__all__ = [
    "SCHEMA_VERSION",
    "Chunk",
    "ProgressCallback",
    "RepoIndex",
    "UpdateStats",
    "chunk_source",
    "default_index_path",
    "identifier_terms",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
NO_EMBEDDER = "none"
DEFINITION_KINDS = frozenset({"function", "method", "class"})
MAX_BLOCK_LINES = 40  # a run of top-level code longer than this is cut into several blocks
EMBED_BATCH_CHUNKS = 64  # chunks gathered across files before one embedder call
BUSY_TIMEOUT_SECONDS = 30.0  # how long a writer waits for another process's write to finish
_SQLITE_HEADER = b"SQLite format 3\x00"

# (done_files, total_files, path just finished)
ProgressCallback = Callable[[int, int, str], None]

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, language TEXT NOT NULL,
    content_hash TEXT NOT NULL, mtime REAL, size INTEGER NOT NULL);
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id),
    name TEXT NOT NULL, kind TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_by_file ON chunks(file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(name, path, doc, body, tokenize = 'unicode61');
CREATE TABLE embeddings(chunk_id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
"""
_TABLES = ("meta", "files", "chunks", "chunks_fts", "embeddings")


# --------------------------------------------------------------------------- text -> terms
_IDENTIFIER = re.compile(r"[^\W\d]\w*|\d+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def identifier_terms(text: str) -> list[str]:
    """Lower-case search terms: identifiers split at ``_``, camelCase humps and digits.

    ``parseHTTPResponse2`` -> ``parse http response 2 parsehttpresponse2``: the parts let a
    natural-language query match code, the joined form keeps exact identifier lookups sharp.
    Single letters are dropped (loop variables are noise, not signal).
    """
    terms: list[str] = []
    for word in _IDENTIFIER.findall(text):
        parts: list[str] = []
        for piece in word.split("_"):
            if piece.isascii():
                parts.extend(_CAMEL_PART.findall(piece))
            elif piece:
                parts.append(piece)
        lowered = [p.lower() for p in parts if len(p) > 1 or p.isdigit()]
        terms.extend(lowered)
        if len(parts) > 1:
            terms.append("".join(parts).lower())
    return terms


def _terms_text(text: str) -> str:
    return " ".join(identifier_terms(text))


# --------------------------------------------------------------------------- chunking
@dataclass(frozen=True)
class Chunk:
    """A searchable unit of a file. Lines are 0-based, end inclusive; bytes are UTF-8 offsets."""

    name: str
    kind: str  # "function" | "method" | "class" | "block"
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    text: str
    docstring: str | None = None


def chunk_source(text: str, language: str) -> list[Chunk]:
    """Definitions from tree-sitter plus blocks of the top-level code between them."""
    from codemlm.syntax import definitions  # tree-sitter loads only when something is indexed

    chunks = [
        Chunk(d.name, d.kind, d.start_line, d.end_line, d.start_byte, d.end_byte, d.text, d.docstring)
        for d in definitions(text, language)
        if d.kind in DEFINITION_KINDS
    ]
    covered: set[int] = set()
    for c in chunks:
        covered.update(range(c.start_line, c.end_line + 1))
    return sorted(chunks + _top_level_blocks(text, covered), key=lambda c: (c.start_line, -c.end_line))


def _top_level_blocks(text: str, covered: set[int]) -> list[Chunk]:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line.encode("utf-8")))
    runs: list[list[int]] = []
    current: list[int] = []
    for number, line in enumerate(lines):
        if number in covered:
            current = []
            continue
        # Cut an over-long run at a blank line: blocks stay about one idea long.
        if len(current) >= MAX_BLOCK_LINES or (len(current) >= MAX_BLOCK_LINES // 2 and not line.strip()):
            current = []
        if not current:
            runs.append(current)
        current.append(number)
    blocks = []
    for run in runs:
        body = [n for n in run if lines[n].strip()]
        if not body:
            continue
        first, last = body[0], body[-1]
        block_text = "".join(lines[first : last + 1])
        meaningful = [lines[n].strip() for n in body if not lines[n].lstrip().startswith("@")]
        if not any(any(ch.isalnum() for ch in s) for s in meaningful):
            continue  # only decorators, braces or punctuation: nothing a query could mean
        blocks.append(
            Chunk(
                name=meaningful[0][:60],
                kind="block",
                start_line=first,
                end_line=last,
                start_byte=starts[first],
                end_byte=starts[last + 1],
                text=block_text,
            )
        )
    return blocks


# --------------------------------------------------------------------------- the index
def default_index_path(repo_root: str | os.PathLike[str]) -> Path:
    """``$CODEMLM_CACHE_DIR`` or ``$XDG_CACHE_HOME/codemlm`` or ``~/.cache/codemlm``, then
    ``index/<name>-<hash of the absolute root>.sqlite``."""
    root = Path(repo_root).expanduser().resolve()
    base = cache_dir()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^\w.-]", "_", root.name) or "root"
    return base / "index" / f"{name}-{digest}.sqlite"


@dataclass
class UpdateStats:
    files_seen: int = 0
    files_indexed: int = 0  # new or changed, re-parsed (and re-embedded)
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_indexed: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.files_indexed} files indexed ({self.chunks_indexed} chunks, {self.chunks_embedded} embedded), "
            f"{self.files_unchanged} unchanged, {self.files_removed} removed"
        )


@dataclass
class _Prepared:
    path: str
    language: str
    content_hash: str
    size: int
    mtime: float | None
    chunks: list[Chunk]
    vectors: np.ndarray | None = None


def _content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(str(path) + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"cannot remove the damaged index {path}: {exc}") from exc


def _open_checked(path: Path, expected: dict[str, str]) -> tuple[sqlite3.Connection, str | None]:
    conn = _connect(path)
    try:
        return conn, _prepare_schema(conn, expected)
    except BaseException:
        conn.close()
        raise


class RepoIndex:
    """An open index of one repository. Use ``RepoIndex.open``; close it (or use ``with``)."""

    def __init__(
        self, root: Path, path: Path, conn: sqlite3.Connection, embedder: Embedder | None,
        rebuilt_reason: str | None, corpus_config: CorpusConfig,
    ) -> None:
        self.root = root
        self.path = path
        self.embedder = embedder
        self.rebuilt_reason = rebuilt_reason
        self.corpus_config = corpus_config
        self._conn = conn
        self._lock = threading.RLock()  # the language server touches the index from worker threads

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        repo_root: str | os.PathLike[str],
        *,
        index_path: str | os.PathLike[str] | None = None,
        embedder: Embedder | None = None,
        rebuild: bool = False,
        corpus_config: CorpusConfig | None = None,
    ) -> RepoIndex:
        root = Path(repo_root).expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"not a directory: {root}")
        path = Path(index_path).expanduser() if index_path else default_index_path(root)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"cannot create the index directory {path.parent}: {exc}") from exc
        if path.is_dir():
            raise IndexStoreError(f"the index path {path} is a directory; give a file path")
        reason = "rebuild requested" if rebuild else _not_sqlite_reason(path)
        if reason:
            _remove_database(path)
        expected = {
            "schema_version": str(SCHEMA_VERSION),
            "repo_root": str(root),
            "embedder": embedder.model_id if embedder else NO_EMBEDDER,
            "dim": str(embedder.dim if embedder else 0),
        }
        try:
            conn, found = _open_checked(path, expected)
        except sqlite3.OperationalError as exc:
            # Locked past the busy timeout, unreadable, no space: not damage, so never delete.
            raise IndexStoreError(f"cannot open the index {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # corrupt beyond the header: start over
            reason = f"unreadable index ({exc})"
            _remove_database(path)
            try:
                conn, found = _open_checked(path, expected)
            except sqlite3.Error as exc2:
                raise IndexStoreError(f"cannot create the index at {path}: {exc2}") from exc2
        reason = reason or found
        if reason:
            log.warning("rebuilding the search index %s: %s", path, reason)
        return cls(root, path, conn, embedder, reason, corpus_config or CorpusConfig(dedupe=False))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RepoIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    @property
    def connection(self) -> sqlite3.Connection:
        """For readers in this package (search); writes go through the methods below."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def generation(self) -> int:
        """Bumped by every committed write, by any process: the staleness key for caches."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def has_embeddings(self) -> bool:
        return self.embedder is not None

    def file_hashes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT path, content_hash FROM files"))

    def count_chunks(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0])

    # ------------------------------------------------------------------ writing
    def update(self, progress: ProgressCallback | None = None) -> UpdateStats:
        """Walk the repository (gitignore-aware, filtered like the corpus) and bring the index
        up to date: changed files re-indexed by content hash, deleted files dropped."""
        from codemlm.corpus import CorpusStats, iter_repository

        started = time.perf_counter()
        stats = UpdateStats()
        known = self.file_hashes()
        seen: set[str] = set()
        todo: list[tuple[str, str, str, str]] = []  # path, language, text, hash
        for source in iter_repository(self.root, self.corpus_config, CorpusStats()):
            seen.add(source.path)
            stats.files_seen += 1
            digest = _content_hash(source.text)
            if known.get(source.path) == digest:
                stats.files_unchanged += 1
            else:
                todo.append((source.path, source.language, source.text, digest))
        for gone in sorted(set(known) - seen):
            self.remove_file(gone)
            stats.files_removed += 1
        self._index_files(todo, stats, progress)
        stats.seconds = time.perf_counter() - started
        return stats

    def update_file(self, rel_path: str, text: str) -> None:
        """Index one file from text the caller holds (an editor's unsaved buffer)."""
        from codemlm.languages import language_for_path

        language = language_for_path(rel_path)
        if language is None:
            return
        path, digest = _posix(rel_path), _content_hash(text)
        with self._lock:
            row = self._conn.execute("SELECT content_hash FROM files WHERE path = ?", (path,)).fetchone()
        if row is not None and row[0] == digest:
            return  # already indexed with this text: skip the parse and the embedding
        self._index_files([(path, language.name, text, digest)], UpdateStats(), None)

    def remove_file(self, rel_path: str) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT id FROM files WHERE path = ?", (_posix(rel_path),)).fetchone()
            if row is not None:
                _delete_file_rows(conn, int(row[0]))
                _bump_generation(conn)

    def _index_files(
        self, todo: Sequence[tuple[str, str, str, str]], stats: UpdateStats, progress: ProgressCallback | None
    ) -> None:
        done = 0
        for group in _batches(todo):
            prepared = [self._prepare(*item) for item in group]
            if self.embedder is not None:
                texts = [c.text for p in prepared for c in p.chunks]
                vectors = self.embedder.embed_code(texts) if texts else np.zeros((0, self.embedder.dim))
                vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                if vectors.shape != (len(texts), self.embedder.dim):
                    raise IndexStoreError(
                        f"embedder {self.embedder.model_id} returned shape {vectors.shape}, "
                        f"expected ({len(texts)}, {self.embedder.dim})"
                    )
                offset = 0
                for p in prepared:
                    p.vectors = vectors[offset : offset + len(p.chunks)]
                    offset += len(p.chunks)
            for p in prepared:
                if self._store(p):
                    stats.files_indexed += 1
                    stats.chunks_indexed += len(p.chunks)
                    stats.chunks_embedded += 0 if p.vectors is None else len(p.chunks)
                done += 1
                if progress is not None:
                    progress(done, len(todo), p.path)

    def _prepare(self, path: str, language: str, text: str, digest: str) -> _Prepared:
        try:
            mtime: float | None = (self.root / path).stat().st_mtime
        except OSError:
            mtime = None
        return _Prepared(path, language, digest, len(text.encode("utf-8", "surrogatepass")), mtime,
                         chunk_source(text, language))

    def _store(self, p: _Prepared) -> bool:
        """Replace one file's rows in one transaction. False if another writer got there first."""
        with self._write() as conn:
            row = conn.execute("SELECT id, content_hash FROM files WHERE path = ?", (p.path,)).fetchone()
            if row is not None and row[1] == p.content_hash:
                return False
            if row is not None:
                _delete_file_rows(conn, int(row[0]))
            file_id = conn.execute(
                "INSERT INTO files(path, language, content_hash, mtime, size) VALUES (?, ?, ?, ?, ?)",
                (p.path, p.language, p.content_hash, p.mtime, p.size),
            ).lastrowid
            path_terms = _terms_text(p.path)
            for i, c in enumerate(p.chunks):
                chunk_id = conn.execute(
                    "INSERT INTO chunks(file_id, name, kind, start_line, end_line, start_byte, end_byte, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (file_id, c.name, c.kind, c.start_line, c.end_line, c.start_byte, c.end_byte, c.text),
                ).lastrowid
                conn.execute(
                    "INSERT INTO chunks_fts(rowid, name, path, doc, body) VALUES (?, ?, ?, ?, ?)",
                    (chunk_id, _terms_text(c.name), path_terms, _terms_text(c.docstring or ""),
                     _terms_text(c.text)),
                )
                if p.vectors is not None:
                    conn.execute(
                        "INSERT INTO embeddings(chunk_id, vector) VALUES (?, ?)",
                        (chunk_id, p.vectors[i].tobytes()),
                    )
            _bump_generation(conn)
        return True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting up to the timeout
            except sqlite3.Error as exc:
                raise IndexStoreError(f"cannot write the index {self.path}: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise IndexStoreError(f"cannot commit to the index {self.path}: {exc}") from exc


def _batches(todo: Sequence[tuple[str, str, str, str]]) -> Iterator[list[tuple[str, str, str, str]]]:
    """Groups of files worth about one embedder call (estimated by size, before parsing)."""
    group: list[tuple[str, str, str, str]] = []
    budget = 0
    for item in todo:
        group.append(item)
        budget += 1 + item[2].count("\n") // 15  # roughly one chunk per 15 lines
        if budget >= EMBED_BATCH_CHUNKS:
            yield group
            group, budget = [], 0
    if group:
        yield group


def _posix(rel_path: str) -> str:
    return Path(rel_path).as_posix()


def _delete_file_rows(conn: sqlite3.Connection, file_id: int) -> None:
    chunk_ids = "SELECT id FROM chunks WHERE file_id = ?"
    conn.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({chunk_ids})", (file_id,))
    conn.execute(f"DELETE FROM embeddings WHERE chunk_id IN ({chunk_ids})", (file_id,))
    conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
    conn.execute("DELETE FROM files WHERE id = ?", (file_id,))


def _bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


def _not_sqlite_reason(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexStoreError(f"cannot read the index file {path}: {exc}") from exc
    if header == b"" and path.stat().st_size == 0:
        return None  # an empty file: SQLite treats it as a new database
    return None if header == _SQLITE_HEADER else "not an SQLite database"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    return conn


def _prepare_schema(conn: sqlite3.Connection, expected: dict[str, str]) -> str | None:
    """Create the schema, or check the existing one; returns why it had to be rebuilt, if it did."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        reason = None
        if tables:
            reason = _mismatch(conn, tables, expected)
            if reason is None:
                conn.execute("COMMIT")
                return None
            objects = conn.execute(
                "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', 'table')"
                " AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name"
            ).fetchall()  # views and triggers first; a virtual table drops its shadow tables itself
            for kind, name in objects:
                quoted = name.replace('"', '""')
                conn.execute(f'DROP {kind.upper()} IF EXISTS "{quoted}"')
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [*expected.items(), ("generation", "0")])
        conn.execute("COMMIT")
        return reason
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _mismatch(conn: sqlite3.Connection, tables: set[str], expected: dict[str, str]) -> str | None:
    if not set(_TABLES) <= tables:
        return "not a codemlm index (unknown tables)"
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("schema_version") != expected["schema_version"]:
        return f"schema version {meta.get('schema_version')} != {expected['schema_version']}"
    if meta.get("repo_root") != expected["repo_root"]:
        return f"it indexes another repository ({meta.get('repo_root')})"
    if meta.get("embedder") != expected["embedder"] or meta.get("dim") != expected["dim"]:
        return f"built with embedder {meta.get('embedder')}, now {expected['embedder']}"
    if "generation" not in meta:
        return "incomplete metadata"
    return None
