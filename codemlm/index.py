"""The repository index: one SQLite file per repository, shared by the CLI and the language server.

``RepoIndex`` owns every statement that touches the file; search and evaluation ask it
through methods. Tables (``codemlm.index_file``): ``meta`` (schema version, repository root, a
generation counter that every write bumps so readers know when their cached matrix is
stale), ``files``, ``chunks`` (definitions and top-level blocks), ``chunks_fts`` (FTS5 over
identifier-split text), ``models`` and ``embeddings`` (vectors keyed by the model that made
them, so two models never mix and a run without a model discards nobody's vectors) and
``vocabulary`` (the repository's own words, for splitting glued names).

Lexical search is FTS5's ``bm25()``; a long-lived reader (the language server) may instead hold
every term's postings in memory (``hold_postings``, ``codemlm.bm25``), which gives the same
scores without FTS5 walking every matching row, and catches up on each write by itself.

Updates are lexical first, vectors after: each file's rows commit in one transaction
(``BEGIN IMMEDIATE``, WAL, 30 s busy timeout), then every chunk without a vector for the
current model is embedded in batches. A crash or Ctrl-C anywhere leaves each file fully old
or fully new, and the next update embeds what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
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

from codemlm import index_file
from codemlm.bm25 import PostingsBM25, PostingsTooLarge
from codemlm.cache import cache_dir
from codemlm.chunking import chunk_source
from codemlm.config import CorpusConfig
from codemlm.embedder import Embedder
from codemlm.errors import IndexStoreError, InputError
from codemlm.identifiers import MAX_TERM_CHARS, glued_words, identifier_terms, spelled_out_words, terms_text
from codemlm.index_file import SCHEMA_VERSION
from codemlm.vectors import ExactVectorStore

__all__ = [
    "SCHEMA_VERSION",
    "ChunkRow",
    "IndexDamagedError",
    "IndexSnapshot",
    "ProgressCallback",
    "RepoIndex",
    "UpdateStats",
    "default_index_path",
    "index_covering",
    "match_expression",
]

log = logging.getLogger(__name__)

EMBED_BATCH_CHUNKS = 64  # chunks per embedder call (and per vector transaction)
SCAN_REPORT_EVERY = 100  # files walked between two "scanning" reports
BUSY_TIMEOUT_SECONDS = index_file.BUSY_TIMEOUT_SECONDS
# Postings held in memory at most (8 bytes each: ~200 MB, ~400k chunks of real code); past
# it the index keeps answering from FTS5 alone.
MAX_HELD_POSTINGS = 25_000_000

# (done, total, what): files while the lexical rows are written, then chunks while embedding
ProgressCallback = Callable[[int, int, str], None]


class IndexDamagedError(IndexStoreError):
    """The index file is ours but damaged inside; ``RepoIndex.rebuild`` starts it over."""


def default_index_path(repo_root: str | os.PathLike[str]) -> Path:
    """``$CODEMLM_CACHE_DIR`` or ``$XDG_CACHE_HOME/codemlm`` or ``~/.cache/codemlm``, then
    ``index/<name>-<hash of the absolute root>.sqlite``. One file per repository serves every
    model: vectors are stored per model inside it."""
    root = Path(repo_root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^\w.-]", "_", root.name) or "root"
    return cache_dir() / "index" / f"{name}-{digest}.sqlite"


def index_covering(path: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """(repository root, index file) of the nearest folder above ``path`` that has an index at
    its default place, or None: how `codemlm complete FILE` finds the repository FILE is in."""
    here = Path(path).expanduser().resolve()
    for folder in here.parents if not here.is_dir() else (here, *here.parents):
        candidate = default_index_path(folder)
        if candidate.is_file():
            return folder, candidate
    return None


@dataclass
class UpdateStats:
    files_seen: int = 0
    files_indexed: int = 0  # new or changed, re-parsed
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


@dataclass(frozen=True)
class ChunkRow:
    path: str
    name: str
    kind: str
    language: str
    start_line: int
    end_line: int
    text: str


@dataclass
class IndexSnapshot:
    """Every chunk's file, and the current model's vectors, as of one generation."""

    generation: int
    store: ExactVectorStore
    chunk_ids: np.ndarray  # Int64[C]
    chunk_file: np.ndarray  # Int64[C], index into file_paths / file_languages
    file_paths: list[str]
    file_languages: list[str]


# A term FTS5's ascii tokenizer keeps as one token, unchanged: lower-case ASCII letters and
# digits, any other character, at most MAX_TERM_CHARS (what identifier_terms makes). Any
# other term goes to FTS5 itself, which phrases, folds or cuts it.
_ONE_TOKEN = re.compile(rf"(?:[a-z0-9]|[^\x00-\x7f]){{1,{MAX_TERM_CHARS}}}")


def match_expression(terms: Sequence[str]) -> str:
    """The FTS5 query matching any of ``terms``, each quoted as a phrase of its own."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms))


def _id_array(listed: str) -> np.ndarray:
    """``"1,2,5"`` (SQLite's ``group_concat`` of integer ids) as an Int64 array: numpy's text
    parser, ~10x ``int()`` over 100k ids."""
    return np.fromstring(listed, dtype=np.int64, sep=",") if listed else np.zeros(0, dtype=np.int64)


def _content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _redact(text: str) -> str:
    # The one redaction of the project: files read by the walk go through it in admit_text.
    from codemlm.secrets import redact_secrets

    return redact_secrets(text)[0]


@contextmanager
def _sqlite_errors(path: Path, doing: str) -> Iterator[None]:
    """sqlite3 errors as ours: damage (rebuildable) apart from everything else (never rebuilt)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if any(word in message for word in ("locked", "busy", "readonly", "read-only", "disk I/O", "unable to open", "full")):
            raise IndexStoreError(f"cannot {doing} the index {path}: {exc}") from exc
        raise IndexDamagedError(f"the index {path} is damaged ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        raise IndexDamagedError(f"the index {path} is damaged ({exc})") from exc


class RepoIndex:
    """An open index of one repository. Use ``RepoIndex.open``; close it (or use ``with``).

    ``embedder`` is the index's model when vectors are wanted, else None (lexical only)."""

    def __init__(
        self, root: Path, path: Path, embedder: Embedder | None, corpus_config: CorpusConfig, read_only: bool
    ) -> None:
        self.root = root
        self.path = path
        self.embedder = embedder
        self.corpus_config = corpus_config
        self.read_only = read_only
        self.rebuilt_reason: str | None = None
        self._lock = threading.RLock()  # the language server touches the index from worker threads
        self._conn: sqlite3.Connection | None = None
        self._model_key: int | None = None
        self._snapshot: IndexSnapshot | None = None
        self._vocabulary: frozenset[str] | None = None
        self._postings: PostingsBM25 | None = None  # see hold_postings
        self._postings_at: tuple[str, int] | None = None  # (created, generation) they reflect
        self._postings_refused: tuple[tuple[float, ...], int] | None = None  # (weights, max_postings) found too many

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
        embed: bool | None = None,
        read_only: bool = False,
    ) -> RepoIndex:
        """Open (creating or rebuilding when it is ours to rebuild) the index of ``repo_root``.

        ``embed``: store vectors from ``embedder``; by default only when its ``dense_weight``
        is above 0, since search would give them no vote. ``read_only``: never write the file
        (``--no-update`` on an index the user may not write). A path holding anything that is
        not a codemlm index is refused with ``IndexStoreError`` and left untouched."""
        root = Path(repo_root).expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"not a directory: {root}")
        path = Path(index_path).expanduser() if index_path else default_index_path(root)
        if embed is None:
            embed = embedder is not None and embedder.dense_weight > 0
        index = cls(root, path, embedder if embed else None, corpus_config or CorpusConfig(dedupe=False), read_only)
        index._connect(rebuild)
        return index

    def _expected_meta(self) -> dict[str, str]:
        return {"schema_version": str(SCHEMA_VERSION), "repo_root": str(self.root)}

    def _connect(self, rebuild: bool) -> None:
        path = self.path
        kind = index_file.classify_index_file(path)  # refuses what is not ours, before any write
        if self.read_only:
            if kind != "ours":
                raise IndexStoreError(f"no index at {path} to read (run `codemlm index` first)")
            with _sqlite_errors(path, "read"):
                conn = index_file.connect(path, read_only=True, busy_timeout=BUSY_TIMEOUT_SECONDS)
                try:
                    index_file.prepare_schema(conn, self._expected_meta(), read_only=True)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
            self._model_key = self._find_model()
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"cannot create the index directory {path.parent}: {exc}") from exc
        start_over = "rebuild requested" if rebuild and kind == "ours" else None
        reason = None
        try:
            conn, found = self._open_file(start_over)
        except sqlite3.OperationalError as exc:
            # Locked past the busy timeout, unreadable, no space: not damage, so never delete.
            raise IndexStoreError(f"cannot open the index {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # ours (or new), corrupt beyond the header: start over
            reason = f"unreadable index ({exc})"
            index_file.remove_index_file(path)
            try:
                conn, found = self._open_file()
            except sqlite3.Error as exc2:
                raise IndexStoreError(f"cannot create the index at {path}: {exc2}") from exc2
        self._conn = conn
        self._note_rebuild(reason or found)
        with _sqlite_errors(path, "open"):
            self._model_key = self._register_model()

    def _open_file(self, start_over: str | None = None) -> tuple[sqlite3.Connection, str | None]:
        conn = index_file.connect(self.path, busy_timeout=BUSY_TIMEOUT_SECONDS)
        try:
            return conn, index_file.prepare_schema(conn, self._expected_meta(), start_over=start_over)
        except BaseException:
            conn.close()
            raise

    def _note_rebuild(self, reason: str | None) -> None:
        if reason:
            self.rebuilt_reason = reason
            log.warning("rebuilding the search index %s: %s", self.path, reason)

    def _register_model(self) -> int | None:
        """The embedder's row in ``models``; a model id seen before with another width loses its
        vectors (they could not be compared with new ones)."""
        if self.embedder is None:
            return None
        model_id, dim = self.embedder.model_id, int(self.embedder.dim)
        with self._write() as conn:
            row = conn.execute("SELECT id, dim FROM models WHERE model_id = ?", (model_id,)).fetchone()
            if row is None:
                inserted = conn.execute("INSERT INTO models(model_id, dim) VALUES (?, ?)", (model_id, dim)).lastrowid
                assert inserted is not None  # an INSERT into a rowid table always has one
                return int(inserted)
            if int(row[1]) != dim:
                conn.execute("DELETE FROM embeddings WHERE model = ?", (row[0],))
                conn.execute("UPDATE models SET dim = ? WHERE id = ?", (dim, row[0]))
                _bump_generation(conn)
            return int(row[0])

    def _find_model(self) -> int | None:
        if self.embedder is None:
            return None
        with self._lock, _sqlite_errors(self.path, "read"):
            row = self._db.execute(
                "SELECT id FROM models WHERE model_id = ? AND dim = ?", (self.embedder.model_id, int(self.embedder.dim))
            ).fetchone()
        return None if row is None else int(row[0])

    def rebuild(self, reason: str) -> None:
        """Start the file over (it is ours: classified when opened) and say why."""
        if self.read_only:
            raise IndexStoreError(f"the index {self.path} is damaged ({reason}) and read-only; rebuild it with `codemlm index --rebuild`")
        with self._lock:
            self.close()
            index_file.remove_index_file(self.path)
            self._snapshot, self._vocabulary = None, None
            if self._postings is not None:
                self._postings, self._postings_at = self._postings.emptied(), None
            self._connect(rebuild=False)
            self.rebuilt_reason = reason
            log.warning("rebuilding the search index %s: %s", self.path, reason)

    def check(self) -> str | None:
        """What is damaged inside the file (pages, full-text rows, vector sizes), or None."""
        with self._lock, _sqlite_errors(self.path, "check"):
            return index_file.check_integrity(self._db, read_only=self.read_only)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RepoIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise IndexStoreError(f"the index {self.path} is closed")
        return self._conn

    # ------------------------------------------------------------------ reading
    def generation(self) -> int:
        """Bumped by every committed write, by any process: the staleness key for caches."""
        with self._lock, _sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def file_hashes(self) -> dict[str, str]:
        with self._lock, _sqlite_errors(self.path, "read"):
            return dict(self._db.execute("SELECT path, content_hash FROM files"))

    def count_chunks(self) -> int:
        with self._lock, _sqlite_errors(self.path, "read"):
            return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def count_vectors(self) -> int:
        """Vectors stored for the current model (0 for a lexical-only index)."""
        if self._model_key is None:
            return 0
        with self._lock, _sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT count(*) FROM embeddings WHERE model = ?", (self._model_key,)).fetchone()
        return int(row[0])

    def lexical(self, terms: Sequence[str], weights: Sequence[float], limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 relevance) of the chunks matching any of ``terms``, best first.
        The relevance is FTS5's ``bm25()`` with column ``weights``, negated so that higher is
        better (FTS5 gives better matches lower values) — from the postings held in memory when
        ``hold_postings`` was called with these weights, else from FTS5 itself."""
        if not terms:
            return []
        with self._lock:
            held_ok = self._postings is not None and self._postings.weights == tuple(float(w) for w in weights)
            if held_ok and all(_ONE_TOKEN.fullmatch(t) for t in terms):
                held = self._current_postings()
                if held is not None:
                    return held.top(terms, limit)
            columns = ", ".join(str(float(w)) for w in weights)
            with _sqlite_errors(self.path, "search"):
                rows = self._db.execute(
                    f"SELECT rowid, bm25(chunks_fts, {columns}) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY 2 LIMIT ?",
                    (match_expression(terms), limit),
                ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def hold_postings(self, weights: Sequence[float], *, max_postings: int = MAX_HELD_POSTINGS) -> bool:
        """Keep every term's postings in memory from now on, so ``lexical`` with these column
        ``weights`` scores from numpy rather than FTS5 (same results; for a process that
        searches many times: the first load reads and splits every chunk's indexed words,
        seconds at 100k chunks; called again, it only catches up with the writes since). False,
        and FTS5 stays in charge, past ``max_postings`` (and from then on for this handle)."""
        wanted = (tuple(float(w) for w in weights), max_postings)
        with self._lock:
            if self._postings_refused == wanted:
                return False  # once too many for this handle: not loaded again after every walk
            held = self._postings
            if held is None or (held.weights, held.max_postings) != wanted:
                self._postings, self._postings_at = PostingsBM25(weights, max_postings=max_postings), None
            return self._current_postings() is not None  # held already: it only catches up

    @property
    def holds_postings(self) -> bool:
        return self._postings is not None

    def postings_size(self) -> tuple[int, int]:
        """(postings, bytes) held in memory; (0, 0) when none are."""
        with self._lock:
            held = self._postings
            return (held.postings, held.nbytes()) if held is not None else (0, 0)

    def _current_postings(self) -> PostingsBM25 | None:
        """The held postings, brought up to the file's current generation: the chunks added
        since (ids only grow) taken in, the removed ones dropped; all again if the file was
        rebuilt since."""
        held = self._postings
        if held is None:
            return None
        if self._postings_at is not None and self._postings_at[1] == self.generation():
            return held
        started = time.perf_counter()
        with _sqlite_errors(self.path, "read"):
            conn = self._db
            conn.execute("BEGIN")  # generation, ids and rows from one state of the file
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('created', 'generation')"))
                created, generation = meta.get("created", ""), int(meta.get("generation", 0))
                if self._postings_at is not None and self._postings_at[0] != created:
                    held = held.emptied()  # the file was rebuilt: its chunk ids were issued anew
                held.keep_only(_id_array(conn.execute("SELECT group_concat(id) FROM chunks").fetchone()[0] or ""))
                added = held.add(
                    conn.execute(
                        "SELECT rowid, coalesce(name, ''), coalesce(path, ''), coalesce(doc, ''), coalesce(body, '')"
                        " FROM chunks_fts WHERE rowid > ? ORDER BY rowid",
                        (held.max_id,),
                    )
                )
            except PostingsTooLarge as exc:  # at the first load or at a catch-up: refused for this handle
                log.info("search index %s: not holding its postings in memory (%s); FTS5 answers", self.path, exc)
                self._postings_refused = (held.weights, held.max_postings)
                self._postings = self._postings_at = None
                return None
            finally:
                conn.execute("COMMIT")
        first_load = self._postings_at is None or self._postings is not held
        self._postings, self._postings_at = held, (created, generation)
        log.log(
            logging.INFO if first_load else logging.DEBUG,
            "search index %s: %d chunks' postings held in memory (%.0f MB; %d added in %.2f s)",
            self.path, held.rows, held.nbytes() / 1e6, added, time.perf_counter() - started,
        )
        return held

    def chunk_rows(self, chunk_ids: Sequence[int], *, with_text: bool = True) -> dict[int, ChunkRow]:
        """The rows of the chunks still there; ``with_text=False`` leaves every ``text`` empty
        (ranking a search's candidates reads their names and paths only)."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        text = "chunks.text" if with_text else "''"
        with self._lock, _sqlite_errors(self.path, "read"):
            rows = self._db.execute(
                "SELECT chunks.id, files.path, chunks.name, chunks.kind, files.language, chunks.start_line,"
                f" chunks.end_line, {text} FROM chunks JOIN files ON files.id = chunks.file_id"
                f" WHERE chunks.id IN ({marks})",
                list(chunk_ids),
            ).fetchall()
        return {int(r[0]): ChunkRow(*r[1:]) for r in rows}

    def file_texts(self, language: str | None, *, exclude: str | None = None, max_chars: int = 4_000_000) -> list[str]:
        """The indexed code of every file in ``language`` but ``exclude``, one text per file.

        A file's text is its outermost chunks in order (a class, not again its methods), which
        is what completion's repository side reads: names, members, continuations. Files come
        in path order until ``max_chars`` is reached."""
        with self._lock, _sqlite_errors(self.path, "read"):
            rows = self._db.execute(
                "SELECT files.path, chunks.start_byte, chunks.end_byte, chunks.text FROM chunks"
                " JOIN files ON files.id = chunks.file_id"
                " WHERE (? IS NULL OR files.language = ?) AND files.path IS NOT ?"
                " ORDER BY files.path, chunks.start_byte, chunks.end_byte DESC",
                (language, language, exclude),
            ).fetchall()
        texts: list[str] = []
        total = 0
        for _path, chunks in itertools.groupby(rows, key=lambda row: row[0]):
            parts, covered = [], -1
            for _, start, end, text in chunks:  # by start, outer before inner
                if start >= covered and text:
                    parts.append(text)
                    covered = end
            if parts:
                texts.append("\n\n".join(parts))
                total += len(texts[-1])
                if total >= max_chars:
                    break
        return texts

    def innermost_chunk(self, path: str, line: int) -> int | None:
        """The id of the smallest definition in ``path`` containing 0-based ``line`` (a block if
        no definition does), or None."""
        with self._lock, _sqlite_errors(self.path, "read"):
            rows = self._db.execute(
                "SELECT chunks.id, chunks.kind, chunks.start_line, chunks.end_line FROM chunks"
                " JOIN files ON files.id = chunks.file_id"
                " WHERE files.path = ? AND chunks.start_line <= ? AND chunks.end_line >= ?",
                (path, line, line),
            ).fetchall()
        candidates = [r for r in rows if r[1] != "block"] or rows
        if not candidates:
            return None
        return int(min(candidates, key=lambda r: (r[3] - r[2], -r[2]))[0])

    def snapshot(self) -> IndexSnapshot:
        """The chunk table and the current model's vectors, reloaded only after a write."""
        cached = self._snapshot
        if cached is not None and cached.generation == self.generation():
            return cached
        with self._lock, _sqlite_errors(self.path, "read"):
            conn = self._db
            conn.execute("BEGIN")  # one consistent read of all three tables
            try:
                generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
                files = conn.execute("SELECT id, path, language FROM files").fetchall()
                table = conn.execute("SELECT id, file_id FROM chunks").fetchall()
                # Looked up again on every reload: another process may have rebuilt the file
                # (and so renumbered the models) since this handle was opened.
                model_key = self._find_model()
                vectors = conn.execute(
                    "SELECT chunk_id, vector FROM embeddings WHERE model = ? ORDER BY chunk_id", (model_key,)
                ).fetchall() if model_key is not None else []
            finally:
                conn.execute("COMMIT")
        dim = int(self.embedder.dim) if self.embedder is not None else 0
        if any(len(r[1]) != 4 * dim for r in vectors):
            raise IndexDamagedError(f"the index {self.path} is damaged (an embedding vector of the wrong size)")
        position = {r[0]: i for i, r in enumerate(files)}
        if any(r[1] not in position for r in table):
            raise IndexDamagedError(f"the index {self.path} is damaged (a chunk without its file)")
        ids = np.fromiter((r[0] for r in vectors), dtype=np.int64, count=len(vectors))
        if vectors:
            matrix = np.frombuffer(b"".join(r[1] for r in vectors), dtype=np.float32).reshape(len(vectors), dim)
        else:
            matrix = np.zeros((0, max(dim, 1)), dtype=np.float32)
        snapshot = IndexSnapshot(
            generation=generation,
            store=ExactVectorStore(ids, matrix),
            chunk_ids=np.fromiter((r[0] for r in table), dtype=np.int64, count=len(table)),
            chunk_file=np.fromiter((position[r[1]] for r in table), dtype=np.int64, count=len(table)),
            file_paths=[r[1] for r in files],
            file_languages=[r[2] for r in files],
        )
        self._snapshot = snapshot
        return snapshot

    # ------------------------------------------------------------------ writing
    def update(
        self, progress: ProgressCallback | None = None, *, scanning: Callable[[int], None] | None = None
    ) -> UpdateStats:
        """Walk the repository (gitignore-aware, filtered like the corpus) and bring the index
        up to date: changed files re-indexed by content hash, deleted files dropped, then the
        vectors that are missing for the current model embedded. ``scanning(files_seen)`` is
        called every ``SCAN_REPORT_EVERY`` files of the walk, before the total is known."""
        from codemlm.sources import CorpusStats, iter_repository

        started = time.perf_counter()
        stats = UpdateStats()
        known = self.file_hashes()
        seen: set[str] = set()
        todo: list[tuple[str, str, str, str]] = []  # path, language, text, hash
        for source in iter_repository(self.root, self.corpus_config, CorpusStats()):
            seen.add(source.path)
            stats.files_seen += 1
            if scanning is not None and stats.files_seen % SCAN_REPORT_EVERY == 0:
                scanning(stats.files_seen)
            digest = _content_hash(source.text)
            if known.get(source.path) == digest:
                stats.files_unchanged += 1
            else:
                todo.append((source.path, source.language, source.text, digest))
        for gone in sorted(set(known) - seen):
            self.remove_file(gone)
            stats.files_removed += 1
        self._learn_vocabulary(text for _, _, text, _ in todo)
        for done, item in enumerate(todo, start=1):
            chunks = self._store(*item)
            if chunks is not None:
                stats.files_indexed += 1
                stats.chunks_indexed += chunks
            if progress is not None:
                progress(done, len(todo), item[0])
        stats.chunks_embedded = self._embed_missing(None, progress)
        stats.seconds = time.perf_counter() - started
        return stats

    def update_file(self, rel_path: str, text: str) -> None:
        """Index one file from text the caller holds (an editor's unsaved buffer), redacted
        the same way as files read from disk."""
        from codemlm.languages import language_for_path

        language = language_for_path(rel_path)
        if language is None:
            return
        text = _redact(text)
        path, digest = Path(rel_path).as_posix(), _content_hash(text)
        with self._lock, _sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT content_hash FROM files WHERE path = ?", (path,)).fetchone()
        if row is not None and row[0] == digest:
            return  # already indexed with this text: skip the parse and the embedding
        self._learn_vocabulary([text])
        self._store(path, language.name, text, digest)
        self._embed_missing(path, None)

    def remove_file(self, rel_path: str) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT id FROM files WHERE path = ?", (Path(rel_path).as_posix(),)).fetchone()
            if row is not None:
                _delete_file_rows(conn, int(row[0]))
                _bump_generation(conn)

    def _learn_vocabulary(self, texts: Iterator[str] | Sequence[str]) -> None:
        words: set[str] = set()
        for text in texts:
            words |= spelled_out_words(text)
        known = self._known_vocabulary()
        new = words - known
        if new:
            with self._write() as conn:
                conn.executemany("INSERT OR IGNORE INTO vocabulary(word) VALUES (?)", [(w,) for w in sorted(new)])
            self._vocabulary = known | new

    def _known_vocabulary(self) -> frozenset[str]:
        if self._vocabulary is None:
            with self._lock, _sqlite_errors(self.path, "read"):
                self._vocabulary = frozenset(r[0] for r in self._db.execute("SELECT word FROM vocabulary"))
        return self._vocabulary

    def _store(self, path: str, language: str, text: str, digest: str) -> int | None:
        """Replace one file's rows in one transaction; the number of chunks, or None if another
        writer got there first."""
        chunks = chunk_source(text, language)
        vocabulary = self._known_vocabulary()
        try:
            mtime: float | None = (self.root / path).stat().st_mtime
        except OSError:
            mtime = None
        with self._write() as conn:
            row = conn.execute("SELECT id, content_hash FROM files WHERE path = ?", (path,)).fetchone()
            if row is not None and row[1] == digest:
                return None
            if row is not None:
                _delete_file_rows(conn, int(row[0]))
            file_id = conn.execute(
                "INSERT INTO files(path, language, content_hash, mtime, size) VALUES (?, ?, ?, ?, ?)",
                (path, language, digest, mtime, len(text.encode("utf-8", "surrogatepass"))),
            ).lastrowid
            path_terms = terms_text(path)
            for c in chunks:
                chunk_id = conn.execute(
                    "INSERT INTO chunks(file_id, name, kind, start_line, end_line, start_byte, end_byte, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (file_id, c.name, c.kind, c.start_line, c.end_line, c.start_byte, c.end_byte, c.text),
                ).lastrowid
                name_terms = identifier_terms(c.name)
                # The words glued into a definition's name (asdict -> as dict), in its name column.
                name_text = " ".join([*name_terms, *glued_words(name_terms, vocabulary)])
                conn.execute(
                    "INSERT INTO chunks_fts(rowid, name, path, doc, body) VALUES (?, ?, ?, ?, ?)",
                    (chunk_id, name_text, path_terms, terms_text(c.docstring or ""), terms_text(c.text)),
                )
            _bump_generation(conn)
        return len(chunks)

    def _embed_missing(self, path: str | None, progress: ProgressCallback | None) -> int:
        """Embed the chunks (of ``path``, or all) that have no vector from the current model."""
        if self.embedder is None or self._model_key is None:
            return 0
        if self._find_model() != self._model_key:  # another process rebuilt the file meanwhile
            self._model_key = self._register_model()
        query = (
            "SELECT chunks.id, chunks.text FROM chunks JOIN files ON files.id = chunks.file_id"
            " WHERE chunks.id NOT IN (SELECT chunk_id FROM embeddings WHERE model = ?)"
        )
        params: tuple[object, ...] = (self._model_key,)
        if path is not None:
            query, params = query + " AND files.path = ?", (self._model_key, path)
        with self._lock, _sqlite_errors(self.path, "read"):
            missing = self._db.execute(query + " ORDER BY chunks.id", params).fetchall()
        done = 0
        for start in range(0, len(missing), EMBED_BATCH_CHUNKS):
            batch = missing[start : start + EMBED_BATCH_CHUNKS]
            vectors = np.ascontiguousarray(self.embedder.embed_code([r[1] for r in batch]), dtype=np.float32)
            if vectors.shape != (len(batch), self.embedder.dim):
                raise IndexStoreError(
                    f"embedder {self.embedder.model_id} returned shape {vectors.shape}, "
                    f"expected ({len(batch)}, {self.embedder.dim})"
                )
            with self._write() as conn:
                # Only for chunks still there: another writer may have replaced the file meanwhile.
                conn.executemany(
                    "INSERT OR IGNORE INTO embeddings(model, chunk_id, vector)"
                    " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
                    [(self._model_key, int(r[0]), vectors[i].tobytes(), int(r[0])) for i, r in enumerate(batch)],
                )
                _bump_generation(conn)
            done += len(batch)
            if progress is not None:
                progress(done, len(missing), "embedding")
        return done

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise IndexStoreError(f"the index {self.path} was opened read-only")
        with self._lock:
            conn = self._db
            with _sqlite_errors(self.path, "write"):
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting up to the timeout
            try:
                with _sqlite_errors(self.path, "write"):
                    yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            with _sqlite_errors(self.path, "commit to"):
                conn.execute("COMMIT")


def _delete_file_rows(conn: sqlite3.Connection, file_id: int) -> None:
    chunk_ids = "SELECT id FROM chunks WHERE file_id = ?"
    conn.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({chunk_ids})", (file_id,))
    conn.execute(f"DELETE FROM embeddings WHERE chunk_id IN ({chunk_ids})", (file_id,))
    conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
    conn.execute("DELETE FROM files WHERE id = ?", (file_id,))


def _bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
