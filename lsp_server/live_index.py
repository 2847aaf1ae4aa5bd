"""The workspace's search index, kept current while the user edits.

One ``RepoIndex`` (the same SQLite file the ``codemlm`` CLI uses, unless ``indexPath`` says
otherwise) is written from one thread (walks, buffer updates, in arrival order) and read from
another through a read-only handle of its own, so a search never waits for a long walk or a
huge buffer's embeddings: the index commits one file per transaction, and search reloads its
vector matrix when the index generation moves.

What the index holds for a file open in the editor is the *buffer*, saved or not: search
should find what the user sees. Walks read the disk, so after each walk the open buffers
that differ from their files are put back. Buffer changes are debounced (typing sends one
``didChange`` per keystroke; re-parsing and re-embedding that often would starve completion
of CPU), and a buffer identical to what was last indexed is not indexed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from codemlm.errors import CodemlmError
from lsp_server.files import read_text_or_none

if TYPE_CHECKING:
    from codemlm.embedder import Embedder
    from codemlm.index import ProgressCallback, RepoIndex, UpdateStats
    from codemlm.search import SearchResult
    from codemlm.search_rerank import EncoderReranker

__all__ = ["DEBOUNCE_SECONDS", "LiveIndex"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEBOUNCE_SECONDS = 0.3
# A search waits at most this long for the buffers typed just now to be indexed: indexing a
# huge buffer (parsing, embedding) can take minutes, and a query must never queue behind it.
FLUSH_WAIT_SECONDS = 0.5


def _read_disk(path: Path) -> str | None:
    """A file's text as the index would read it, or None if it is gone, not a regular file,
    huge or not UTF-8 (a FIFO named like a source file must not block the event loop)."""
    return read_text_or_none(path)


class LiveIndex:
    """The index of one workspace root. Every method is called from the event loop."""

    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codemlm-index")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codemlm-search")
        self._index: RepoIndex | None = None
        # The search thread's own read-only handle on the same file (touched on that thread only).
        self._read_index: RepoIndex | None = None
        self._read_failed = False
        self._buffers: dict[str, str] = {}  # open documents: rel path -> latest buffer text
        self._indexed: dict[str, str] = {}  # rel path -> text last handed to the index by us
        self._timers: dict[str, asyncio.TimerHandle] = {}  # debounced buffer updates
        self._in_flight: set[asyncio.Task[None]] = set()
        self._walking = False
        # The index generation after our own last write: a different one at search time means
        # another process (a CLI `codemlm index`) wrote, and may have put disk text back over
        # the unsaved buffers we had indexed.
        self._our_generation: int | None = None
        self.root: Path | None = None
        self.problem: str | None = None  # why there is no index, for the user

    # ------------------------------------------------------------------ state
    @property
    def is_open(self) -> bool:
        return self._index is not None

    @property
    def has_embeddings(self) -> bool:
        return self._index is not None and self._index.embedder is not None

    @property
    def path(self) -> Path | None:
        return self._index.path if self._index is not None else None

    async def _on(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    # ------------------------------------------------------------------ opening and walking
    async def open(self, root: Path, *, index_path: str | None, embedder: Embedder | None) -> None:
        """(Re)open the index for ``root``. An index built with another embedder is rebuilt
        by the library. Failure leaves the server without search and sets ``problem``."""
        from codemlm.index import RepoIndex

        await self.close()
        self.root = root
        try:
            self._index = await self._on(
                self._writer, lambda: RepoIndex.open(root, index_path=index_path, embedder=embedder)
            )
            self.problem = None
        except CodemlmError as exc:
            logger.error("cannot open the search index for %s: %s", root, exc)
            self.problem = str(exc)

    async def update_all(self, progress: ProgressCallback | None = None) -> UpdateStats | None:
        """Walk the workspace, re-index what changed on disk, then put dirty buffers back.

        ``progress`` runs on the index thread; it must only hand work to the loop.
        """
        index = self._index
        if index is None:
            return None
        self._walking = True
        try:
            stats = await self._on(self._writer, index.update, progress)
        finally:
            self._walking = False
        self._indexed.clear()  # the walk wrote disk text for every file
        root = self.root
        assert root is not None
        for rel_path, text in list(self._buffers.items()):
            if _read_disk(root / rel_path) != text:
                await self.update_buffer(rel_path, text)
        await self._note_our_write()
        # Not awaited: the first search queues behind it on the search thread, nothing else does.
        asyncio.get_running_loop().run_in_executor(self._reader, self._hold_postings, index)
        return stats

    def _hold_postings(self, writer: RepoIndex) -> None:
        """On the search thread: keep the lexical side's postings in memory (one pass over the
        indexed words, seconds on a large workspace; after a walk, only what it changed)."""
        from codemlm.search import hold_postings

        if writer is not self._index:  # closed or reopened since the walk
            return
        try:
            hold_postings(self._reading(writer))
        except CodemlmError as exc:
            logger.warning("search answers from the full-text index alone: %s", exc)
        except Exception:  # MemoryError and the like: a speed-up lost, never the server
            logger.exception("search answers from the full-text index alone")

    # ------------------------------------------------------------------ editor buffers
    def buffer_opened(self, rel_path: str, text: str) -> None:
        self._buffers[rel_path] = text
        root = self.root
        if root is not None and _read_disk(root / rel_path) != text:
            self._schedule(rel_path)

    def buffer_changed(self, rel_path: str, text: str) -> None:
        self._buffers[rel_path] = text
        self._schedule(rel_path)

    async def buffer_closed(self, rel_path: str) -> None:
        """The editor dropped the buffer: the file on disk is the truth again."""
        self._buffers.pop(rel_path, None)
        self._cancel_timer(rel_path)
        last = self._indexed.pop(rel_path, None)
        if last is None or self.root is None:
            return  # we never put a buffer in the index: it holds the disk version
        disk = _read_disk(self.root / rel_path)
        if disk is None:
            await self._track(self.remove(rel_path))
        elif disk != last:
            await self._track(self.update_buffer(rel_path, disk))
            self._indexed.pop(rel_path, None)

    def _schedule(self, rel_path: str) -> None:
        if self._index is None:
            return
        self._cancel_timer(rel_path)
        loop = asyncio.get_running_loop()
        self._timers[rel_path] = loop.call_later(DEBOUNCE_SECONDS, self._start_update, rel_path)

    def _cancel_timer(self, rel_path: str) -> None:
        timer = self._timers.pop(rel_path, None)
        if timer is not None:
            timer.cancel()

    def _start_update(self, rel_path: str) -> None:
        self._cancel_timer(rel_path)
        text = self._buffers.get(rel_path)
        if text is not None:
            self._track(self.update_buffer(rel_path, text))

    def _track(self, update: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run an index write as a task that ``flush`` (a search) waits for."""
        task = asyncio.get_running_loop().create_task(update)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def update_buffer(self, rel_path: str, text: str) -> None:
        """Index ``text`` as the content of ``rel_path`` now, unless it already is."""
        index = self._index
        if index is None or self._indexed.get(rel_path) == text:
            return
        self._indexed[rel_path] = text
        try:
            await self._on(self._writer, index.update_file, rel_path, text)
        except CodemlmError as exc:
            self._indexed.pop(rel_path, None)
            logger.warning("could not index %s: %s", rel_path, exc)
        await self._note_our_write()

    async def remove(self, rel_path: str) -> None:
        index = self._index
        if index is None:
            return
        self._cancel_timer(rel_path)
        self._indexed.pop(rel_path, None)
        try:
            await self._on(self._writer, index.remove_file, rel_path)
        except CodemlmError as exc:
            logger.warning("could not drop %s from the index: %s", rel_path, exc)

    async def flush(self) -> None:
        """Apply the debounced buffer updates now, so a search sees what the user just typed.

        Skipped while a walk runs, and bounded otherwise: the writer may be busy for minutes
        (a walk, a huge buffer's embeddings) and a search answers from what is indexed rather
        than wait for it.
        """
        if self._walking:
            return
        await self._restore_after_other_writers()
        for rel_path in list(self._timers):
            self._start_update(rel_path)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=FLUSH_WAIT_SECONDS)

    async def _restore_after_other_writers(self) -> None:
        index = self._index
        if index is None or self.root is None or not self._buffers:
            return
        try:
            generation = await self._on(self._writer, index.generation)
        except CodemlmError:
            return
        if self._our_generation is not None and generation != self._our_generation:
            for rel_path, text in list(self._buffers.items()):
                if _read_disk(self.root / rel_path) != text:
                    self._indexed.pop(rel_path, None)  # what we indexed may have been replaced
                    self._start_update(rel_path)
        self._our_generation = generation

    async def _note_our_write(self) -> None:
        index = self._index
        if index is not None:
            try:
                self._our_generation = await self._on(self._writer, index.generation)
            except CodemlmError:
                self._our_generation = None

    # ------------------------------------------------------------------ reading
    async def search(
        self, query: str, *, k: int, language: str | None = None, path_glob: str | None = None,
        reranker: EncoderReranker | None = None,
    ) -> list[SearchResult]:
        """``codemlm.search.search`` on the search thread; ``reranker`` rereads the top there too."""
        from codemlm.search import search

        index = self._index
        if index is None:
            return []
        run = reranker.search if reranker is not None else search
        return await self._on(
            self._reader, lambda: run(self._reading(index), query, k=k, language=language, path_glob=path_glob)
        )

    async def repository_texts(self, language: str | None) -> tuple[int, list[str]] | None:
        """(generation, the indexed code of every file in ``language``) for completion's
        repository side; None without an index. Read on the search thread, like a search."""
        index = self._index
        if index is None:
            return None

        def read() -> tuple[int, list[str]]:
            reading = self._reading(index)
            return reading.generation(), reading.file_texts(language)

        return await self._on(self._reader, read)

    def _reading(self, writer: RepoIndex) -> RepoIndex:
        """On the search thread: a read-only handle of its own on the index file, so a search
        never waits for the writer's lock (the file is in WAL mode: SQLite readers run beside a
        writer); the writer's handle when the library cannot open one."""
        from codemlm.index import RepoIndex

        if self._read_index is None and not self._read_failed:
            try:
                self._read_index = RepoIndex.open(
                    writer.root,
                    index_path=writer.path,
                    embedder=writer.embedder,
                    embed=writer.embedder is not None,
                    read_only=True,
                )
            except (TypeError, CodemlmError) as exc:  # TypeError: a library without read-only handles
                logger.info("searching through the writer's handle: %s", exc)
                self._read_failed = True
        return self._read_index or writer

    def _close_reading(self) -> None:
        """On the search thread."""
        index, self._read_index = self._read_index, None
        self._read_failed = False
        if index is not None:
            index.close()

    # ------------------------------------------------------------------ closing
    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._indexed.clear()
        index, self._index = self._index, None
        await self._on(self._reader, self._close_reading)
        if index is not None:
            await self._on(self._writer, index.close)

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._writer.shutdown(wait=False, cancel_futures=True)
        self._reader.shutdown(wait=False, cancel_futures=True)
        for index in (self._index, self._read_index):
            if index is not None:
                try:
                    index.close()
                except Exception:  # sqlite may object while a worker still holds a cursor
                    logger.exception("closing the index")
        self._index = self._read_index = None
