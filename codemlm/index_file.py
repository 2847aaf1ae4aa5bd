"""The index's file on disk: recognising our own, creating, checking and removing it.

codemlm deletes, truncates or rewrites only a file it can prove it wrote: an SQLite header
(bytes 0-15) *and* our ``application_id`` (bytes 68-71 of the same header, so a file whose
later pages are wrecked is still recognisably ours). Anything else at the index path — a
source file, someone else's database, a directory, a FIFO, a device — is refused with an
``IndexStoreError`` before it is opened for writing; a FIFO is never even opened.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from codemlm.errors import IndexStoreError

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "check_integrity",
    "classify_index_file",
    "connect",
    "prepare_schema",
    "remove_index_file",
]

SCHEMA_VERSION = 3  # 3: chunk ids never reused, the ascii tokenizer, a creation stamp
APPLICATION_ID = 0x636D6C6D  # "cmlm": PRAGMA application_id, stored in the file header
BUSY_TIMEOUT_SECONDS = 30.0  # how long a writer waits for another process's write to finish
_SQLITE_HEADER = b"SQLite format 3\x00"
_HEADER_BYTES = 100

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, language TEXT NOT NULL,
    content_hash TEXT NOT NULL, mtime REAL, size INTEGER NOT NULL);
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_id INTEGER NOT NULL REFERENCES files(id),
    name TEXT NOT NULL, kind TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_by_file ON chunks(file_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(name, path, doc, body, tokenize = 'ascii');
CREATE TABLE models(id INTEGER PRIMARY KEY, model_id TEXT NOT NULL UNIQUE, dim INTEGER NOT NULL);
CREATE TABLE embeddings(
    model INTEGER NOT NULL REFERENCES models(id), chunk_id INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY(model, chunk_id)) WITHOUT ROWID;
CREATE INDEX embeddings_by_chunk ON embeddings(chunk_id);
CREATE TABLE vocabulary(word TEXT PRIMARY KEY) WITHOUT ROWID;
"""
TABLES = ("meta", "files", "chunks", "chunks_fts", "models", "embeddings", "vocabulary")
_LEGACY_TABLES = {"meta", "files", "chunks", "chunks_fts", "embeddings"}  # schema 1, before application_id


def classify_index_file(path: Path) -> str:
    """``"missing"``, ``"empty"`` or ``"ours"``; raises ``IndexStoreError`` for anything we did not
    write (a database with no tables counts as empty: there is nothing in it to lose)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise IndexStoreError(f"cannot read the index file {path}: {exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise IndexStoreError(f"the index path {path} is a directory; give a file path")
    if not stat.S_ISREG(info.st_mode):
        raise IndexStoreError(f"the index path {path} is not a regular file (a FIFO, socket or device); refusing to use it")
    if info.st_size == 0:
        return "empty"  # nothing to lose; SQLite itself starts a new database this way
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, open must not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IndexStoreError(f"the index path {path} is not a regular file; refusing to use it")
            header = os.read(fd, _HEADER_BYTES)
        finally:
            os.close(fd)
    except OSError as exc:
        raise IndexStoreError(f"cannot read the index file {path}: {exc}") from exc
    refusal = (
        f"{path} exists and is not a codemlm index ({{}}); refusing to overwrite it. "
        "Choose another index path, or remove the file yourself"
    )
    if not header.startswith(_SQLITE_HEADER) or len(header) < _HEADER_BYTES:
        raise IndexStoreError(refusal.format("not an SQLite database"))
    if int.from_bytes(header[68:72], "big") == APPLICATION_ID:
        return "ours"
    found = _look_inside(path)
    if found is None:
        raise IndexStoreError(refusal.format("an SQLite database of another application"))
    return found


def _look_inside(path: Path) -> str | None:
    """Ask SQLite, read-only, what the header alone cannot tell: our application id written
    to a WAL not yet checkpointed into the file, a database with no tables yet (another
    process creating the index this very moment; nothing in it to lose), or a schema-1
    codemlm index from before the application id. None: someone else's database."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error:
        return None
    conn.text_factory = _lenient_text
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
            return "ours"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return "empty"
        if not tables >= _LEGACY_TABLES:
            return None
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        return "ours" if meta.get("schema_version") == "1" and "repo_root" in meta else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def remove_index_file(path: Path) -> None:
    """Delete an index this module has classified as ours, with its WAL side files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(str(path) + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"cannot remove the damaged index {path}: {exc}") from exc


def connect(path: Path, *, read_only: bool = False, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    if read_only:
        # mode=ro never writes the file; it still reads a WAL left by a writer. In a folder we
        # may not write, SQLite cannot make the WAL's shared-memory file: then the file is read
        # as immutable (nobody can be writing it there).
        for option in ("mode=ro", "immutable=1"):
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?{option}", uri=True, timeout=busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
            conn.text_factory = _lenient_text
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if option == "immutable=1" or "unable to open" not in str(exc):
                    raise
        raise AssertionError("unreachable")
    fresh = not path.exists() or path.stat().st_size == 0
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.text_factory = _lenient_text
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    if fresh:
        # Mark the file as ours in its very first write (rollback mode writes the header in
        # place), so no other process ever sees an unmarked database of ours.
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
    except UnicodeDecodeError as exc:
        # A damaged schema page makes SQLite's own error message invalid UTF-8, which the
        # sqlite3 module fails to decode: that is damage, reported as such.
        conn.close()
        raise sqlite3.DatabaseError(f"database disk image is malformed ({exc.reason})") from None
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    return conn


def prepare_schema(
    conn: sqlite3.Connection, expected: dict[str, str], *, read_only: bool = False, start_over: str | None = None
) -> str | None:
    """Create the schema, or check the existing one; returns why it had to be rebuilt, if it did.
    ``start_over`` (a reason) empties an intact index in place, in one transaction, so another
    process holding it open (the language server) keeps a valid file rather than a deleted
    one. Read-only, a mismatch is an error: nothing may be rebuilt."""
    if read_only:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        reason = _mismatch(conn, tables, expected) if tables else "the index is empty"
        if reason:
            raise IndexStoreError(
                f"the read-only index cannot be used as it is: {reason}; run `codemlm index` on the repository to rebuild it"
            )
        return None
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        reason = None
        if tables:
            reason = start_over or _mismatch(conn, tables, expected)
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
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        # The generation starts at the clock, not 0: a reader that cached generation N of the
        # file before a rebuild must not mistake the rebuilt file's N for the same contents.
        # ``created`` stays: a reader holding chunk ids learns from it that they were reissued.
        start = str(time.time_ns() // 1000)
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)", [*expected.items(), ("generation", start), ("created", start)]
        )
        conn.execute("COMMIT")
        return reason
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _mismatch(conn: sqlite3.Connection, tables: set[str], expected: dict[str, str]) -> str | None:
    meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    if meta.get("schema_version") != expected["schema_version"]:
        return (
            f"schema version {meta.get('schema_version')} != {expected['schema_version']}"
            " (made by another version of codemlm)"
        )
    if not set(TABLES) <= tables:
        return "tables are missing"
    if meta.get("repo_root") != expected["repo_root"]:
        return f"it indexes another repository ({meta.get('repo_root')})"
    if "generation" not in meta or "created" not in meta:
        return "incomplete metadata"
    return None


def check_integrity(conn: sqlite3.Connection, *, read_only: bool = False) -> str | None:
    """What is damaged inside the file, or None: pages (quick_check), the full-text index
    against its rows, and every vector's byte length against its model's width."""
    try:
        pages = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        if pages != ["ok"]:
            return "damaged pages: " + "; ".join(str(p) for p in pages)
        if not read_only:  # the FTS5 check is spelled as an INSERT, which a read-only handle refuses
            conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
        bad = conn.execute(
            "SELECT count(*) FROM embeddings JOIN models ON models.id = embeddings.model"
            " WHERE length(embeddings.vector) != 4 * models.dim"
        ).fetchone()[0]
        if bad:
            return f"{bad} embedding vector(s) of the wrong size"
        orphans = conn.execute(
            "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)"
        ).fetchone()[0]
        if orphans:
            return f"{orphans} embedding vector(s) without a chunk"
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise IndexStoreError(f"cannot check the index: {exc}") from exc
        return f"damaged full-text index or tables ({exc})"
    except sqlite3.DatabaseError as exc:
        return f"damaged ({exc})"
    return None


def _lenient_text(data: bytes) -> str:
    """TEXT values as str even when damage left invalid UTF-8 in a page: a damaged index must
    reach the integrity check and be reported, never die in the sqlite3 module's decoder."""
    return data.decode("utf-8", "replace")
