"""The rest of the workspace, as completion's repository side: built off the loop, reused.

Completion reads names, members, continuations and analogous spans from the other files of
the repository (:class:`codemlm.candidates.Repository`), taken from the search index the
server keeps current (:class:`lsp_server.live_index.LiveIndex`). Building one lexes and parses
every file of a language, far too slow for a keystroke, so a completion never waits for it:
it gets the last one built for its (language, file), or none yet, and a build is started in
the background when there is none, or when the index has moved and the last build is older
than :data:`REFRESH_SECONDS`. The holed file itself is always left out: the index holds the
buffer as it was a moment ago, and what followed the cursor then is not an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codemlm.errors import CodemlmError

if TYPE_CHECKING:
    from codemlm.candidates import Repository

__all__ = ["REFRESH_SECONDS", "RepositorySide"]

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
MAX_KEPT = 4  # (language, file) pairs kept: the files a user moves between

# (language, rel path to leave out) -> (index generation, the other files' texts), or None
TextsSource = Callable[[str | None, str | None], Awaitable[tuple[int, list[str]] | None]]


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
        self._built: OrderedDict[tuple[str | None, str | None], _Built] = OrderedDict()
        self._building: dict[tuple[str | None, str | None], asyncio.Task[None]] = {}

    def current(self, language: str | None, rel_path: str | None) -> Repository | None:
        """The repository side for a hole in ``rel_path`` now (maybe a little stale), or None."""
        key = (language, rel_path)
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

    async def _build(self, key: tuple[str | None, str | None], previous: _Built | None) -> None:
        from codemlm.candidates import Repository

        language, rel_path = key
        try:
            found = await self._texts(language, rel_path)
            if found is None:
                return
            generation, texts = found
            if previous is not None and previous.generation == generation:
                previous.at = self._clock()  # nothing moved: keep it, look again later
                return
            repository = await asyncio.to_thread(Repository, texts, language)
        except (CodemlmError, OSError, ValueError) as exc:
            logger.warning("no repository side for %s: %s", rel_path or language, exc)
            return
        self._built[key] = _Built(repository, generation, self._clock())
        self._built.move_to_end(key)
        while len(self._built) > MAX_KEPT:
            self._built.popitem(last=False)
