"""Model work off the event loop, newest request first.

Two CPU cores serve an editor that fires a completion request on every keystroke, so the
server must never compute an answer nobody is waiting for. Every job is keyed (by document
URI): asking again for the same key, or editing that document, bumps its *generation*, and a
job whose generation is no longer current is skipped before it starts and discarded when it
ends. Jobs run one at a time on a single worker thread: torch already spreads one forward
pass over the cores, and one model in memory serves every request in turn.

Cancelling the awaiting handler (``$/cancelRequest`` cancels its asyncio task) also cancels
a queued job, since ``run_in_executor`` chains the cancellation to the executor's future.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

__all__ = ["STALE", "LatestRequestRunner", "Stale"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Stale:
    """Marker for "a newer request or an edit superseded this one"."""

    _instance: Stale | None = None

    def __new__(cls) -> Stale:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "STALE"


STALE: Final = Stale()


class _Superseded(Exception):
    pass


class LatestRequestRunner:
    """A single-worker executor with generation counters per document and per request kind.

    A document's *edit* generation moves on every change to it (all its jobs go stale); a
    *request* generation moves when the same kind of request (``"completion"``,
    ``"inline"``) for the same document arrives again. VS Code asks for a completion list and
    for inline ghost text on the same keystroke, so the two kinds must not supersede each
    other.
    """

    def __init__(self, thread_name: str = "codemlm-model") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._edits: dict[str, int] = {}
        self._requests: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def invalidate(self, uri: str) -> None:
        """Make every job for ``uri`` in flight stale (an edit to that document)."""
        with self._lock:
            self._edits[uri] = self._edits.get(uri, 0) + 1

    def forget(self, uri: str) -> None:
        """The document closed: pending jobs go stale and its counters are dropped."""
        with self._lock:
            self._edits[uri] = self._edits.get(uri, 0) + 1
            for key in [key for key in self._requests if key[0] == uri]:
                del self._requests[key]

    def _ticket(self, uri: str, kind: str) -> tuple[int, int]:
        with self._lock:
            request = self._requests.get((uri, kind), 0) + 1
            self._requests[(uri, kind)] = request
            return self._edits.get(uri, 0), request

    def _is_current(self, uri: str, kind: str, ticket: tuple[int, int]) -> bool:
        with self._lock:
            return (self._edits.get(uri, 0), self._requests.get((uri, kind), 0)) == ticket

    async def run_latest(self, uri: str, kind: str, fn: Callable[..., T], *args: Any) -> T | Stale:
        """Run ``fn(*args)`` on the worker unless the document changes or a newer request
        of the same kind for it arrives first. Returns :data:`STALE` when superseded."""
        ticket = self._ticket(uri, kind)

        def job() -> T:
            if not self._is_current(uri, kind, ticket):
                raise _Superseded
            return fn(*args)

        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, job)
        except _Superseded:
            logger.debug("skipped a superseded %s job for %s", kind, uri)
            return STALE
        if not self._is_current(uri, kind, ticket):
            logger.debug("dropped the result of a superseded %s job for %s", kind, uri)
            return STALE
        return result

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker, in turn with the keyed jobs (model loading)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
