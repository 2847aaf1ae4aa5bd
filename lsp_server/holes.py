"""A hole in a live buffer, and the model's candidates for it.

Completion, inline completion and ``codemlm.fillSelection`` all ask the same question: what
goes in bytes ``[start, end)`` of this buffer, reading the code on both sides? This module
snapshots the buffer (later edits cannot move the ground under a request), cuts the window
around the hole (:mod:`lsp_server.document`), runs :class:`codemlm.infill.InfillEngine` on
the inference worker, and turns each candidate's byte range back into an editor range.

VS Code sends ``textDocument/completion`` and ``textDocument/inlineCompletion`` for the
same keystroke; :class:`SharedHoleJobs` lets the second request wait for the first one's
model run instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types

from codemlm.errors import CodemlmError, InputError
from lsp_server.document import (
    DocumentLines,
    TextWindow,
    is_probably_binary,
    language_for_document,
    position_encoding,
)
from lsp_server.inference import STALE, Stale
from lsp_server.protocol import ARRIVAL_VERSION

if TYPE_CHECKING:
    from codemlm.infill import Candidate, InfillEngine
    from lsp_server.server import CodemlmLanguageServer

__all__ = [
    "STALE",
    "Fill",
    "Hole",
    "SharedHoleJobs",
    "StaleRequest",
    "candidates_or_none",
    "complete_hole",
    "fills_for",
    "make_hole",
]

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


def make_hole(
    ls: CodemlmLanguageServer, uri: str, start: types.Position, end: types.Position | None, *, open_only: bool
) -> Hole:
    """Snapshot ``uri`` and locate the hole. Raises :class:`~codemlm.errors.CodemlmError`
    subclasses for anything a request cannot be answered on (and says why), and
    :class:`StaleRequest` when an edit overtook the request."""
    document = ls.workspace.text_documents.get(uri)
    if document is None and open_only:
        raise InputError(f"{uri} is not open in the editor")
    arrival = ARRIVAL_VERSION.get()
    if document is not None and arrival is not None and document.version != arrival:
        raise StaleRequest(f"{uri} changed from version {arrival} to {document.version} before the request ran")
    try:
        if document is None:  # a file the editor has not opened: read it from disk
            document = ls.workspace.get_text_document(uri)
        text = document.source
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read {uri}: {exc}") from exc
    if is_probably_binary(text):
        raise InputError(f"{uri} holds binary content")
    lines = ls.hole_jobs.lines(uri, document.version, text)
    lines.check_position(start)
    last = start
    if end is not None:
        lines.check_position(end)
        if (end.line, end.character) < (start.line, start.character):
            raise InputError("the range ends before it starts")
        last = end
    encoding = position_encoding(ls.workspace.position_encoding)
    window = lines.window(start.line, last.line, encoding)
    start_byte = window.byte_offset(start)
    end_byte = window.byte_offset(end) if end is not None else None
    return Hole(
        uri=uri,
        version=document.version,
        language=language_for_document(document.language_id, uri),
        window=window,
        start_byte=start_byte,
        end_byte=end_byte,
    )


def complete_hole(engine: InfillEngine, hole: Hole, k: int) -> list[Candidate]:
    """The model call (on the inference worker)."""
    return engine.complete(hole.window.text, hole.start_byte, hole.end_byte, language=hole.language, k=k)


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
            )
        )
    return fills


class SharedHoleJobs:
    """One model run per (document version, hole), however many requests ask for it.

    A request that is cancelled stops waiting; the run itself is cancelled only when nobody
    waits for it any more. A newer hole in the same document supersedes an older one
    (``LatestRequestRunner``), and so does any edit.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[tuple[object, ...], asyncio.Task[list[Candidate] | Stale], list[int]]] = {}
        self._lines: dict[str, tuple[int, DocumentLines]] = {}

    def lines(self, uri: str, version: int | None, text: str) -> DocumentLines:
        """The line index of a buffer version, built once for the requests that share it
        (a 50,000-line buffer takes ~15 ms to scan)."""
        cached = self._lines.get(uri)
        if version is not None and cached is not None and cached[0] == version and cached[1].text is text:
            return cached[1]
        lines = DocumentLines(text)
        if version is not None:
            self._lines[uri] = (version, lines)
        return lines

    async def candidates(
        self, ls: CodemlmLanguageServer, engine: InfillEngine, hole: Hole, k: int
    ) -> list[Candidate] | Stale:
        key = (*hole.key, k)
        entry = self._jobs.get(hole.uri)
        if entry is None or entry[0] != key or not _reusable(entry[1]):
            task = asyncio.ensure_future(ls.runner.run_latest(hole.uri, "hole", complete_hole, engine, hole, k))
            entry = (key, task, [0])
            self._jobs[hole.uri] = entry
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

    def forget(self, uri: str) -> None:
        self._jobs.pop(uri, None)
        self._lines.pop(uri, None)


def _reusable(task: asyncio.Task[list[Candidate] | Stale]) -> bool:
    """A run still going, or one that produced candidates (not cancelled, failed or stale)."""
    if not task.done():
        return True
    return not task.cancelled() and task.exception() is None and not isinstance(task.result(), Stale)


async def candidates_or_none(
    ls: CodemlmLanguageServer, jobs: SharedHoleJobs, hole: Hole, k: int
) -> list[Candidate] | Stale | None:
    """Candidates for ``hole``; None when there is no model (already reported to the user)."""
    state = await ls.model()
    if state.engine is None:
        return None
    try:
        return await jobs.candidates(ls, state.engine, hole, k)
    except CodemlmError as exc:
        logger.info("no completion at %s: %s", hole.uri, exc)
        return []

