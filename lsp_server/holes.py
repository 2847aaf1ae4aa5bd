"""A hole in a buffer, and the one road from a hole to the model's candidates.

Completion, inline completion and ``codemlm.fillSelection`` all ask the same question: what
goes in bytes ``[start, end)`` of this buffer, reading the code on both sides?
:class:`HoleService` answers it for all three: it snapshots the buffer (later edits cannot
move the ground under a request), cuts the window around the hole
(:mod:`lsp_server.document`), runs :class:`codemlm.infill.InfillEngine` on the inference
worker, and turns each candidate's byte range back into an editor range.

VS Code sends ``textDocument/completion`` and ``textDocument/inlineCompletion`` for the
same keystroke; the service lets the second request wait for the first one's model run
instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from codemlm.errors import InputError
from lsp_server.document import (
    DocumentLines,
    TextWindow,
    is_probably_binary,
    language_for_document,
    position_encoding,
)
from lsp_server.files import inside, read_text
from lsp_server.inference import STALE, LatestRequestRunner, Stale
from lsp_server.pygls_shim import ARRIVAL_VERSION

if TYPE_CHECKING:
    from pygls.workspace import Workspace

    from codemlm.candidates import Repository
    from codemlm.infill import Candidate, InfillEngine
    from lsp_server.model_host import ModelState

__all__ = ["STALE", "Fill", "Hole", "HoleService", "StaleRequest", "complete_hole", "fills_for"]

logger = logging.getLogger(__name__)

_WORD_TAIL = re.compile(r"\w+\Z")


class StaleRequest(Exception):
    """The document changed between the request's arrival and its handling."""


@dataclass(frozen=True)
class Hole:
    """A request's hole: byte offsets into ``window.data`` (end None: a cursor)."""

    uri: str
    version: int | None
    language: str | None
    window: TextWindow
    start_byte: int
    end_byte: int | None

    @property
    def key(self) -> tuple[object, ...]:
        end = self.start_byte if self.end_byte is None else self.end_byte
        return (self.uri, self.version, self.window.start_char, self.start_byte, end, self.language)


@dataclass(frozen=True)
class Fill:
    """A candidate as an editor edit: replace ``range`` with ``new_text``.

    ``new_text`` includes the part of the word already typed left of the hole (the engine
    keeps it as context), so the edit's range contains the cursor, as clients require, and
    the client's filtering against the typed prefix works.
    """

    new_text: str
    range: types.Range
    score: float
    syntax_ok: bool
    typed_prefix: str
    source: str = "model"  # where the candidate came from: model, name, member, analog, …


def complete_hole(engine: InfillEngine, hole: Hole, k: int, repository: Repository | None = None) -> list[Candidate]:
    """The model call (on the inference worker)."""
    return engine.complete(
        hole.window.text, hole.start_byte, hole.end_byte, language=hole.language, k=k, repository=repository
    )


def fills_for(hole: Hole, candidates: list[Candidate], *, include_word_prefix: bool) -> list[Fill]:
    """Candidates as edits, best first; empty and no-op candidates dropped."""
    window = hole.window
    fills: list[Fill] = []
    for candidate in candidates:
        start, end = candidate.start_byte, candidate.end_byte
        prefix = ""
        if include_word_prefix and start == hole.start_byte:
            line_start = window.data.rfind(b"\n", 0, start) + 1
            before = window.data[line_start:start].decode("utf-8", errors="replace")
            match = _WORD_TAIL.search(before)
            prefix = match.group(0) if match else ""
        new_text = prefix + candidate.text
        replaced = window.text_between(start - len(prefix.encode("utf-8")), end)
        if not candidate.text.strip() or new_text == replaced:
            continue
        fills.append(
            Fill(
                new_text=new_text,
                range=window.range(start - len(prefix.encode("utf-8")), end),
                score=candidate.score,
                syntax_ok=candidate.syntax_ok,
                typed_prefix=prefix,
                source=candidate.source,
            )
        )
    return fills



class HoleService:
    """Holes in the workspace's documents and the model runs that fill them.

    One model run per (document version, hole, request kind), however many requests ask for
    it. A request that is cancelled stops waiting; the run itself is cancelled only when
    nobody waits for it any more. A newer hole of the same kind in the same document
    supersedes an older one (``LatestRequestRunner``), and so does any edit. Completion and
    inline completion share the kind ``"hole"``; fill-selection has its own, so a keystroke's
    completion does not cancel an explicit fill.
    """

    def __init__(
        self,
        runner: LatestRequestRunner,
        model: Callable[[], Awaitable[ModelState]],
        workspace: Callable[[], Workspace],
        root: Callable[[], Path | None],
        repository: Callable[[str | None], Repository | None] | None = None,
    ) -> None:
        self._runner = runner
        self._repository = repository  # language -> the workspace's files of it, or None
        self._model = model
        self._workspace = workspace
        self._root = root
        self._jobs: dict[tuple[str, str], tuple[tuple[object, ...], asyncio.Task[list[Candidate] | Stale], list[int]]] = {}
        self._lines: dict[str, tuple[int, DocumentLines]] = {}

    # ------------------------------------------------------------------ holes
    def buffer_hole(self, uri: str, start: types.Position, end: types.Position | None) -> Hole:
        """The hole in the open buffer ``uri``. Raises :class:`~codemlm.errors.CodemlmError`
        subclasses for anything a request cannot be answered on (and says why), and
        :class:`StaleRequest` when an edit overtook the request."""
        document = self._workspace().text_documents.get(uri)
        if document is None:
            raise InputError(f"{uri} is not open in the editor")
        arrival = ARRIVAL_VERSION.get()
        if arrival is not None and document.version != arrival:
            raise StaleRequest(f"{uri} changed from version {arrival} to {document.version} before the request ran")
        return self._hole(uri, document.source, document.version, document.language_id, start, end)

    async def file_hole(self, uri: str, start: types.Position, end: types.Position | None) -> Hole:
        """The hole in ``uri``: its open buffer, else the file on disk, read only if it is a
        regular file inside the workspace and not huge, and read off the event loop."""
        if uri in self._workspace().text_documents:
            return self.buffer_hole(uri, start, end)
        root = self._root()
        fs_path = to_fs_path(uri)
        if not fs_path:
            raise InputError(f"{uri} is neither open in the editor nor a file: URI")
        if root is None:
            raise InputError(f"{uri} is not open in the editor, and there is no workspace folder to read it from")

        def read() -> str:
            return read_text(inside(Path(fs_path), root))

        text = await asyncio.to_thread(read)
        return self._hole(uri, text, None, None, start, end)

    def _hole(
        self,
        uri: str,
        text: str,
        version: int | None,
        language_id: str | None,
        start: types.Position,
        end: types.Position | None,
    ) -> Hole:
        if is_probably_binary(text):
            raise InputError(f"{uri} holds binary content")
        lines = self._document_lines(uri, version, text)
        lines.check_position(start)
        last = start
        if end is not None:
            lines.check_position(end)
            if (end.line, end.character) < (start.line, start.character):
                raise InputError("the range ends before it starts")
            last = end
        encoding = position_encoding(self._workspace().position_encoding)
        window = lines.window(start.line, last.line, encoding)
        return Hole(
            uri=uri,
            version=version,
            language=language_for_document(language_id, uri),
            window=window,
            start_byte=window.byte_offset(start),
            end_byte=window.byte_offset(end) if end is not None else None,
        )

    def _document_lines(self, uri: str, version: int | None, text: str) -> DocumentLines:
        """The line index of a buffer version, built once for the requests that share it
        (a 50,000-line buffer takes ~15 ms to scan)."""
        cached = self._lines.get(uri)
        if version is not None and cached is not None and cached[0] == version and cached[1].text is text:
            return cached[1]
        lines = DocumentLines(text)
        if version is not None:
            self._lines[uri] = (version, lines)
        return lines

    # ------------------------------------------------------------------ the model
    async def candidates(self, hole: Hole, k: int, *, kind: str = "hole") -> list[Candidate] | Stale | None:
        """The model's candidates for ``hole``, best first; None when there is no model (the
        user has been told why), :data:`STALE` when an edit or a newer request overtook it.
        Raises :class:`~codemlm.errors.CodemlmError` when the engine refuses the hole."""
        state = await self._model()
        if state.engine is None:
            return None
        found = await self._shared_run(state.engine, hole, k, kind)
        # The runner's ticket is taken when the job is queued, after the awaits above: an edit
        # applied between cutting the hole and queueing it would not make the job stale there.
        if hole.version is not None and self._buffer_version(hole.uri) != hole.version:
            return STALE
        return found

    def _buffer_version(self, uri: str) -> int | None:
        document = self._workspace().text_documents.get(uri)
        return None if document is None else document.version

    async def _shared_run(self, engine: InfillEngine, hole: Hole, k: int, kind: str) -> list[Candidate] | Stale:
        key = (*hole.key, k)
        slot = (hole.uri, kind)
        entry = self._jobs.get(slot)
        if entry is None or entry[0] != key or not _reusable(entry[1]):
            repository = self._repository_for(hole)
            task = asyncio.ensure_future(
                self._runner.run_latest(hole.uri, kind, complete_hole, engine, hole, k, repository)
            )
            entry = (key, task, [0])
            self._jobs[slot] = entry
        _, task, waiters = entry
        waiters[0] += 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() or waiters[0] > 1:
                raise
            task.cancel()
            raise
        finally:
            waiters[0] -= 1

    def _repository_for(self, hole: Hole) -> Repository | None:
        """The rest of the workspace for a hole in a file under the workspace root, else None."""
        root = self._root()
        if self._repository is None or root is None:
            return None
        fs_path = to_fs_path(hole.uri)
        if not fs_path or not Path(fs_path).is_relative_to(root):
            return None
        return self._repository(hole.language)

    def forget(self, uri: str) -> None:
        """The document closed: drop its runs and its line index."""
        for slot in [slot for slot in self._jobs if slot[0] == uri]:
            del self._jobs[slot]
        self._lines.pop(uri, None)


def _reusable(task: asyncio.Task[list[Candidate] | Stale]) -> bool:
    """A run still going, or one that produced candidates (not cancelled, failed or stale)."""
    if not task.done():
        return True
    return not task.cancelled() and task.exception() is None and not isinstance(task.result(), Stale)
