"""The rest of the workspace, as completion's repository side: built off the loop, reused.

Completion reads names, members, continuations and analogous spans from the other files of
the repository (:class:`codemlm.candidates.Repository`), taken from the search index the
server keeps current (:class:`lsp_server.live_index.LiveIndex`). Building one lexes and parses
every file of a language, far too slow for a keystroke, so a completion never waits for it:
it gets the last one built for its language, or none yet, and a build is started in the
background when there is none, or when the index has moved and the last build is older than
:data:`REFRESH_SECONDS`. Builds run one at a time on a thread of their own at low CPU priority:
a build per file (to leave the edited file out) made completion's p95 six times slower while
a user moved between files (BENCHMARKS.md), so the edited file stays in, as the index holds it;
its names and members are the file's own evidence anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codemlm.errors import CodemlmError

if TYPE_CHECKING:
    from codemlm.candidates import Repository

__all__ = ["REFRESH_SECONDS", "RepositorySide"]

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
MAX_KEPT = 4  # languages kept
BUILD_NICENESS = 10  # the build thread's CPU priority (Linux threads have their own)

# language -> (index generation, the texts of its files), or None without an index
TextsSource = Callable[[str | None], Awaitable[tuple[int, list[str]] | None]]


@dataclass
class _Built:
    repository: Repository
    generation: int
    at: float


class RepositorySide:
    """Call from the event loop only."""

    def __init__(self, texts: TextsSource, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._texts = texts
        self._clock = clock
        self._built: OrderedDict[str | None, _Built] = OrderedDict()
        self._building: dict[str | None, asyncio.Task[None]] = {}
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codemlm-repository",
                                           initializer=_lower_priority)

    def current(self, language: str | None) -> Repository | None:
        """The repository side for a hole in a ``language`` file now (maybe a little stale), or None.
        The holed file is not left out (see the module's doc)."""
        key = language
        built = self._built.get(key)
        if built is not None:
            self._built.move_to_end(key)
        if key not in self._building and (built is None or self._clock() - built.at >= REFRESH_SECONDS):
            task = asyncio.get_running_loop().create_task(self._build(key, built))
            self._building[key] = task
            task.add_done_callback(lambda _t: self._building.pop(key, None))
        return built.repository if built is not None else None

    async def wait(self) -> None:
        """Until the builds started so far have finished (tests, shutdown)."""
        if self._building:
            await asyncio.wait(set(self._building.values()))

    def clear(self) -> None:
        """The workspace or its index changed under us: build afresh on the next completion."""
        for task in self._building.values():
            task.cancel()
        self._building.clear()
        self._built.clear()

    def shutdown(self) -> None:
        self.clear()
        self._builder.shutdown(wait=False, cancel_futures=True)

    async def _build(self, key: str | None, previous: _Built | None) -> None:
        from codemlm.candidates import Repository

        language = key
        try:
            found = await self._texts(language)
            if found is None:
                return
            generation, texts = found
            if previous is not None and previous.generation == generation:
                previous.at = self._clock()  # nothing moved: keep it, look again later
                return
            loop = asyncio.get_running_loop()
            repository = await loop.run_in_executor(self._builder, Repository, texts, language)
        except (CodemlmError, OSError, ValueError, RuntimeError) as exc:  # RuntimeError: shut down
            logger.warning("no repository side for %s files: %s", language, exc)
            return
        self._built[key] = _Built(repository, generation, self._clock())
        self._built.move_to_end(key)
        while len(self._built) > MAX_KEPT:
            self._built.popitem(last=False)


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: builds just compete
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)
