"""``codemlm index [PATH]``: build or update a repository's search index.

``open_index`` is shared with ``codemlm search``: resolve the model (falling back to a
lexical-only index with a one-line notice when there is none), open the index, report a
rebuild, and run an incremental update behind a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codemlm.index import RepoIndex, UpdateStats

__all__ = ["load_embedder", "note_rebuild", "open_index", "register", "update_repairing", "update_with_progress"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="build or update the search index of a repository",
        description="Index a repository for `codemlm search` (incremental: only changed files are re-read).",
    )
    parser.add_argument("path", nargs="?", default=".", help="repository root (default: the current directory)")
    add_index_arguments(parser)
    parser.set_defaults(handler=_run)


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR", default=None, help="model directory (default: $CODEMLM_MODEL or the shipped model)")
    parser.add_argument("--index-path", metavar="P", default=None, help="index file (default: in the user cache directory)")
    parser.add_argument("--rebuild", action="store_true", help="discard the existing index and build it again")


def load_embedder(model: str | None, err: Any) -> Any:
    """The model as a LazyModelEmbedder (weights load on first use), or None (with a notice on
    ``err``) when no model can be found."""
    from codemlm.checkpoint import resolve_model_dir
    from codemlm.embedder import LazyModelEmbedder
    from codemlm.errors import ModelNotFoundError

    try:
        model_dir = resolve_model_dir(model)
    except ModelNotFoundError as exc:
        if model:  # asked for a model that is not there: that is an error, not a fallback
            raise
        err.print(f"[yellow]note:[/yellow] no model found, using lexical search only ({exc})", highlight=False, soft_wrap=True)
        return None
    return LazyModelEmbedder(model_dir)


def update_with_progress(index: RepoIndex, err: Any) -> UpdateStats:
    """Update the index with progress on stderr: a live bar on a terminal, plain lines at most
    every few seconds when stderr is piped or logged (a bar would print nothing there)."""
    if not err.is_terminal:
        return _update_with_lines(index, err)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as bar:
        task = bar.add_task(f"scanning {index.root.name}", total=None)

        def on_scan(seen: int) -> None:
            bar.update(task, completed=seen, description=f"scanning {index.root.name}")

        def on_progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=f"indexing {path[-40:]}")

        return index.update(progress=on_progress, scanning=on_scan)


PROGRESS_LINE_SECONDS = 2.0


def _update_with_lines(index: RepoIndex, err: Any) -> UpdateStats:
    import time

    last = time.monotonic()
    err.print(f"codemlm: scanning {index.root}", highlight=False, soft_wrap=True)

    def due(final: bool) -> bool:
        nonlocal last
        now = time.monotonic()
        if final or now - last >= PROGRESS_LINE_SECONDS:
            last = now
            return True
        return False

    def on_scan(seen: int) -> None:
        if due(False):
            err.print(f"codemlm: scanning, {seen} files so far", highlight=False, soft_wrap=True)

    def on_progress(done: int, total: int, path: str) -> None:
        if due(done == total):
            verb = "embedding" if path == "embedding" else "indexing"
            err.print(f"codemlm: {verb} {done}/{total}", highlight=False, soft_wrap=True)

    return index.update(progress=on_progress, scanning=on_scan)


def open_index(
    repo: str, model: str | None, index_path: str | None, rebuild: bool, err: Any, *,
    embed: bool | None = None, read_only: bool = False,
) -> RepoIndex:
    """Open the index for the CLI. ``embed`` as in ``RepoIndex.open`` (default: only when the
    model's dense side has a vote); ``read_only`` never writes (``search --no-update``)."""
    from codemlm.errors import InputError
    from codemlm.index import RepoIndex

    # The rebuild notice is printed below; keep the library's log record from printing it twice.
    logging.getLogger("codemlm.index").addHandler(logging.NullHandler())
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise InputError(f"not a directory: {root}")
    embedder = load_embedder(model, err)
    index = RepoIndex.open(
        root, index_path=index_path, embedder=embedder, rebuild=rebuild, embed=embed, read_only=read_only
    )
    if index.rebuilt_reason:
        note_rebuild(index, err)
    return index


def note_rebuild(index: RepoIndex, err: Any) -> None:
    err.print(f"[yellow]note:[/yellow] rebuilding the index {index.path}: {index.rebuilt_reason}", highlight=False, soft_wrap=True)


def update_repairing(index: RepoIndex, err: Any, *, verify: bool) -> UpdateStats:
    """Update; if the index turns out damaged (during the update, or by SQLite's own checks
    when ``verify``), say so, start it over and update once more. Only ever our own file:
    ``RepoIndex.open`` refused anything else."""
    from codemlm.index import IndexDamagedError

    try:
        stats = update_with_progress(index, err)
        damage = index.check() if verify else None
    except IndexDamagedError as exc:
        damage = str(exc)
    if damage:
        index.rebuild(f"damaged: {damage}")
        note_rebuild(index, err)
        stats = update_with_progress(index, err)
    return stats


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    index = open_index(args.path, args.model, args.index_path, args.rebuild, err)
    try:
        # `index` reports success only for an index that passes SQLite's own checks: damage
        # found here is repaired now rather than surfacing in every later search.
        stats = update_repairing(index, err, verify=True)
        kind = "hybrid" if index.embedder is not None else "lexical-only"
        print(f"{stats} in {stats.seconds:.1f} s; {index.count_chunks()} chunks ({kind}) in {index.path}")
    finally:
        index.close()
    return 0
