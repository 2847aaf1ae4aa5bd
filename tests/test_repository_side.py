"""Completion's repository side in the server: built off the loop from the index, one per language, reused."""

from __future__ import annotations

import asyncio

from codemlm.candidates import Repository
from codemlm.errors import IndexStoreError
from lsp_server.repository_side import MAX_KEPT, REFRESH_SECONDS, RepositorySide

FILES = {
    "pkg/a.py": "from store import Store\ns = Store('/tmp')\ns.flush_all()\n",
    "pkg/b.py": "def helper(x):\n    return x\n",
}


class IndexTexts:
    """What LiveIndex.repository_texts answers: (generation, the other files' texts)."""

    def __init__(self) -> None:
        self.generation = 1
        self.calls: list[str | None] = []
        self.fail = False

    async def __call__(self, language: str | None) -> tuple[int, list[str]] | None:
        self.calls.append(language)
        if self.fail:
            raise IndexStoreError("the index is locked")
        return self.generation, [text for _path, text in sorted(FILES.items())]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_completion_starts_a_build_and_later_ones_reuse_it() -> None:
    async def scenario() -> None:
        texts, clock = IndexTexts(), Clock()
        side = RepositorySide(texts, clock=clock)
        assert side.current("python") is None  # never waits for the build
        await side.wait()
        built = side.current("python")
        assert isinstance(built, Repository) and len(built) == 2
        assert "flush_all" in built.names and "helper" in built.names
        assert side.current("python") is built  # one per language, reused by every file of it
        assert texts.calls == ["python"]
        # Nothing moved: the same object, no new build even after the refresh interval.
        clock.now += REFRESH_SECONDS
        assert side.current("python") is built
        await side.wait()
        assert side.current("python") is built and len(texts.calls) == 2
        # The index moved: rebuilt once the interval has passed, not before.
        texts.generation = 2
        clock.now += 1
        side.current("python")
        await side.wait()
        assert side.current("python") is built and len(texts.calls) == 2
        clock.now += REFRESH_SECONDS
        side.current("python")
        await side.wait()
        assert side.current("python") is not built
        side.shutdown()

    asyncio.run(scenario())


def test_an_unreadable_index_means_no_repository_side_and_no_error() -> None:
    async def scenario() -> None:
        texts = IndexTexts()
        texts.fail = True
        side = RepositorySide(texts, clock=Clock())
        assert side.current("python") is None
        await side.wait()
        assert side.current("python") is None

    asyncio.run(scenario())


def test_only_the_languages_in_use_are_kept_and_clear_forgets_them() -> None:
    async def scenario() -> None:
        side = RepositorySide(IndexTexts(), clock=Clock())
        languages = [f"lang{n}" for n in range(MAX_KEPT + 2)]
        for language in languages:
            side.current(language)
            await side.wait()
        kept = [language for language in languages if side.current(language) is not None]
        assert kept == languages[2:]
        side.clear()
        assert side.current(languages[-1]) is None
        side.shutdown()

    asyncio.run(scenario())


def test_the_repository_context_is_an_opt_in_setting() -> None:
    from lsp_server.options import parse_options

    assert parse_options({}).__getitem__(0).repository_context is False
    options, problems = parse_options({"codemlm": {"repositoryContext": True}})
    assert options.repository_context is True and problems == []
    options, problems = parse_options({"repositoryContext": "yes"})
    assert options.repository_context is False and "repositoryContext must be true or false" in problems[0]
