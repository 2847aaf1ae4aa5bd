"""The codemlm language server: its state, and the wiring of the feature modules.

Handlers live in small modules (``lifecycle``, ``sync``, ``completion``, ``commands``,
``symbols``) and stay thin: they read the request, call the services here, and shape the
answer. They never import this module: each takes the server as the
:class:`lsp_server.context.ServerContext` protocol, and :func:`create_server` hands the server
down to their ``register``. This class owns what lives across requests, and only its own
methods change it: the settings, the workspace root, the model (loaded once on the inference
worker), the hole service (the one road to the model), the live index and the status shown
in the editor's status bar (``codemlm/status``, docs/INTERFACES.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from codemlm.errors import CodemlmError
from lsp_server import __version__, commands, completion, lifecycle, symbols, sync
from lsp_server.document import position_encoding
from lsp_server.holes import HoleService
from lsp_server.inference import LatestRequestRunner
from lsp_server.live_index import LiveIndex
from lsp_server.model_host import ModelState, load_model_state
from lsp_server.options import ServerOptions
from lsp_server.pygls_shim import CodemlmProtocol, LspLinesWorkspace, check_pygls, replace_workspace
from lsp_server.repository_side import RepositorySide
from lsp_server.search_results import ResultRanges

if TYPE_CHECKING:
    from codemlm.candidates import Repository
    from codemlm.search import SearchResult
    from codemlm.search_rerank import EncoderReranker

__all__ = ["STATUS_NOTIFICATION", "CodemlmLanguageServer", "create_server"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

STATUS_NOTIFICATION = "codemlm/status"
# Progress reports while indexing: at most this often (the index reports every file).
_PROGRESS_INTERVAL_S = 0.2
# File events come in bursts (a checkout, a formatter run): one walk after the burst.
WALK_DEBOUNCE_SECONDS = 1.0
# A search that finds nothing while the first index is built waits this long for it.
INDEXING_WAIT_SECONDS = 3.0


class CodemlmLanguageServer(LanguageServer):
    def __init__(self, on_exit: Callable[[int], None] | None = None) -> None:
        super().__init__(
            "codemlm-lsp",
            __version__,
            protocol_cls=CodemlmProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self._options = ServerOptions()
        self._pending_problems: list[str] = []  # settings problems to show once initialized
        self._shutdown_requested = False  # the exit code after `exit` depends on it (LSP spec)
        self._on_exit = on_exit or _exit_process
        self.runner = LatestRequestRunner()
        self.live_index = LiveIndex()
        self._root: Path | None = None
        self.repository_side = RepositorySide(self.live_index.repository_texts)
        self.holes = HoleService(
            self.runner, self.model, lambda: self.workspace, lambda: self._root, self._repository_context
        )
        self._model_task: asyncio.Task[ModelState] | None = None
        self._shown_model_problem: str | None = None
        self._shown_index_problem: str | None = None
        self._index_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._walk_timer: asyncio.TimerHandle | None = None  # debounced walk after file events
        self._progress_ids = itertools.count(1)
        self._indexed_once = False  # the first walk of this session has finished
        self._walk_done = asyncio.Event()
        self._told_partial = False
        self.status: tuple[str, str] = ("indexing", "starting")  # the last codemlm/status sent

    # ------------------------------------------------------------------ state, read-only outside
    @property
    def options(self) -> ServerOptions:
        return self._options

    @property
    def root(self) -> Path | None:
        return self._root

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested

    # ------------------------------------------------------------------ session lifecycle
    def start_session(
        self,
        options: ServerOptions,
        problems: list[str],
        root: Path | None,
        folders: list[types.WorkspaceFolder],
    ) -> None:
        """``initialize``: settings, root, and a workspace that counts lines the LSP way."""
        replace_workspace(self, LspLinesWorkspace, folders)
        self._options, self._pending_problems, self._root = options, list(problems), root
        logger.info("workspace root %s; options %s", root, options)

    def take_settings_problems(self) -> list[str]:
        problems, self._pending_problems = self._pending_problems, []
        return problems

    def apply_options(self, new: ServerOptions) -> None:
        """New settings: reload the model or reopen the index when what they name changed."""
        old, self._options = self._options, new
        if new.model_dir != old.model_dir:
            self.load_model()
            self.spawn(self.reindex(reopen=True))
        elif new.index_path != old.index_path:
            self.spawn(self.reindex(reopen=True))

    def schedule_walk(self) -> None:
        """One incremental walk after a burst of file events."""
        if self._walk_timer is not None:
            self._walk_timer.cancel()

        def walk() -> None:
            self._walk_timer = None
            self.spawn(self.reindex())

        self._walk_timer = asyncio.get_running_loop().call_later(WALK_DEBOUNCE_SECONDS, walk)

    def request_shutdown(self) -> None:
        self._shutdown_requested = True
        self.stop_background()

    def exit(self) -> None:
        """``exit``: end the process (stdio) or this client's session (TCP)."""
        self.stop_background()
        self._on_exit(0 if self._shutdown_requested else 1)

    def end_session(self) -> None:
        """The client went away without ``exit``."""
        self.stop_background()

    # ------------------------------------------------------------------ background work
    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run in the background; keep a reference, and log (never lose) its failure."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)

        def done(finished: asyncio.Task[T]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("background task failed", exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    # ------------------------------------------------------------------ messages to the user
    def send_status(self, state: str, message: str) -> None:
        self.status = (state, message)
        self.protocol.notify(STATUS_NOTIFICATION, {"state": state, "message": message})

    def warn(self, message: str) -> None:
        logger.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))

    def info(self, message: str) -> None:
        logger.info("%s", message)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=message))

    def show_settings_problems(self, problems: list[str]) -> None:
        if problems:
            self.warn("codemlm: invalid settings, defaults used instead: " + "; ".join(problems))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls pops up "Error in server" for anything that fails outside a request,
        garbage a client sent included. Log it (and into the client's log) instead: a failed
        request already answers with an error, and a notification has no one waiting."""
        if source is FeatureRequestError:  # answered with an error response already
            logger.warning("request failed: %s", error)
            return
        logger.error("%s: %s", getattr(source, "__name__", source), error)
        try:
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType.Error, message=f"codemlm-lsp: {error}")
            )
        except Exception:  # the transport itself is what failed
            logger.debug("could not forward the error to the client", exc_info=True)

    # ------------------------------------------------------------------ model
    def load_model(self) -> asyncio.Task[ModelState]:
        """(Re)load the model named by the settings, on the inference worker."""
        model_dir = self.options.model_dir
        self._model_task = self.spawn(self.runner.run(load_model_state, model_dir))
        return self._model_task

    async def model(self) -> ModelState:
        task = self._model_task or self.load_model()
        state = await asyncio.shield(task)
        if not state.available and state.problem != self._shown_model_problem:
            self._shown_model_problem = state.problem
            self.warn(f"codemlm: {state.problem}. Completion is off; search is lexical only.")
        return state

    # ------------------------------------------------------------------ workspace paths
    def relative_path(self, uri: str) -> str | None:
        """The workspace-relative posix path of a file URI, or None outside the workspace."""
        if self._root is None:
            return None
        path = to_fs_path(uri)
        if not path:
            return None
        try:
            return Path(path).resolve().relative_to(self._root).as_posix()
        except (ValueError, OSError, RuntimeError):
            return None

    # ------------------------------------------------------------------ search
    async def search(
        self, query: str, *, k: int, language: str | None = None, path_glob: str | None = None
    ) -> list[SearchResult]:
        """Hybrid search over the live index, after applying the buffers typed just now.

        While the first index is built, a search that finds nothing waits briefly for it, and
        the user is told (once) that results are partial: never a silent empty answer."""
        results = await self._search(query, k=k, language=language, path_glob=path_glob)
        if results or not self.indexing:
            return results
        try:
            await asyncio.wait_for(asyncio.shield(self._walk_done.wait()), INDEXING_WAIT_SECONDS)
        except TimeoutError:
            if not self._told_partial:
                self._told_partial = True
                self.info("codemlm: the workspace is still being indexed; search results are partial until it is done.")
            return results
        return await self._search(query, k=k, language=language, path_glob=path_glob)

    @property
    def indexing(self) -> bool:
        """The first index of this session is still being built."""
        return self._root is not None and not self._indexed_once

    async def _search(
        self, query: str, *, k: int, language: str | None = None, path_glob: str | None = None
    ) -> list[SearchResult]:
        await self.live_index.flush()
        reranker = self._search_reranker()
        allowed = self.options.languages
        if allowed is None or language is not None:
            if language is not None and allowed is not None and language not in allowed:
                return []
            return await self.live_index.search(query, k=k, language=language, path_glob=path_glob, reranker=reranker)
        if len(allowed) == 1:
            return await self.live_index.search(query, k=k, language=allowed[0], path_glob=path_glob, reranker=reranker)
        # Several languages: read deeper, then keep the allowed ones.
        results = await self.live_index.search(query, k=4 * k, path_glob=path_glob, reranker=reranker)
        return [r for r in results if r.language in allowed][:k]

    def _search_reranker(self) -> EncoderReranker | None:
        """The model's search encoder once the model has loaded (a search never waits for the
        load: until then it is answered without the second look), if the user left it on."""
        task = self._model_task
        if not self.options.search_rerank or task is None or not task.done() or task.cancelled():
            return None
        if task.exception() is not None:
            return None
        return task.result().reranker

    def result_ranges(self) -> ResultRanges | None:
        if self._root is None:
            return None
        encoding = position_encoding(self.workspace.position_encoding)

        def buffer_text(uri: str) -> str | None:
            document = self.workspace.text_documents.get(uri)
            return document.source if document is not None else None

        return ResultRanges(self._root, encoding, buffer_text)

    # ------------------------------------------------------------------ indexing
    async def reindex(self, *, reopen: bool = False) -> dict[str, Any]:
        """Bring the index up to date (opening it first if needed), with progress and status."""
        try:
            return await self._reindex(reopen)
        finally:
            self._indexed_once = True  # or failed: searches stop waiting for it either way
            self._walk_done.set()

    def _repository_context(self, language: str | None) -> Repository | None:
        """Completion's view of the workspace's other files, when the user turned it on."""
        return self.repository_side.current(language) if self.options.repository_context else None

    async def _reindex(self, reopen: bool) -> dict[str, Any]:
        if self._index_lock is None:
            self._index_lock = asyncio.Lock()
        async with self._index_lock:
            state = await self.model()
            ready_state = "ready" if state.available else "no-model"
            if self.root is None:
                self.send_status(ready_state, "no workspace folder: search is off")
                return {"indexed": False, "reason": "no workspace folder"}
            if reopen or not self.live_index.is_open:
                self.repository_side.clear()
                await self.live_index.open(self.root, index_path=self.options.index_path, embedder=state.embedder)
            if not self.live_index.is_open:
                message = f"search is off: {self.live_index.problem}"
                self.send_status(ready_state, message)
                if self.live_index.problem != self._shown_index_problem:
                    # A typo in indexPath must be seen, not just logged: the file it names is
                    # left alone, and search stays off until the setting is fixed.
                    self._shown_index_problem = self.live_index.problem
                    self.warn(f"codemlm: {message}")
                return {"indexed": False, "reason": self.live_index.problem}
            self.send_status("indexing", f"indexing {self.root.name}")
            try:
                stats = await self._with_progress("codemlm: indexing", self.live_index.update_all)
            except CodemlmError as exc:
                self.warn(f"codemlm: indexing {self.root.name} failed: {exc}")
                self.send_status(ready_state, f"indexing failed: {exc}")
                return {"indexed": False, "reason": str(exc)}
            search_kind = "hybrid" if self.live_index.has_embeddings else "lexical"
            model_note = "" if state.available else f" (no model: {state.problem})"
            summary = str(stats) if stats is not None else "index unavailable"
            self.send_status(ready_state, f"{search_kind} search ready: {summary}{model_note}")
            if stats is None:
                return {"indexed": False, "reason": "index unavailable"}
            return {
                "indexed": True,
                "filesSeen": stats.files_seen,
                "filesIndexed": stats.files_indexed,
                "filesUnchanged": stats.files_unchanged,
                "filesRemoved": stats.files_removed,
                "chunksIndexed": stats.chunks_indexed,
                "seconds": round(stats.seconds, 3),
            }

    async def _with_progress(
        self, title: str, work: Callable[[Callable[[int, int, str], None] | None], Awaitable[T]]
    ) -> T:
        """Run ``work(progress_callback)`` inside a server-initiated work-done progress."""
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return await work(None)
        token = f"codemlm-index-{next(self._progress_ids)}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception:  # the client refused the token: index without a progress bar
            logger.warning("client refused progress token %s", token, exc_info=True)
            return await work(None)
        progress = self.work_done_progress
        progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False, percentage=0))
        loop = asyncio.get_running_loop()
        last = 0.0

        def report(done: int, total: int, path: str) -> None:
            percentage = int(100 * done / total) if total else 100
            progress.report(token, types.WorkDoneProgressReport(message=f"{done}/{total} {path}", percentage=percentage))

        def on_file(done: int, total: int, path: str) -> None:  # called on the index thread
            nonlocal last
            now = time.monotonic()
            if done == total or now - last >= _PROGRESS_INTERVAL_S:
                last = now
                loop.call_soon_threadsafe(report, done, total, path)

        try:
            result = await work(on_file)
        finally:
            progress.end(token, types.WorkDoneProgressEnd(message="done"))
        return result

    # ------------------------------------------------------------------ shutdown
    def stop_background(self) -> None:
        if self._walk_timer is not None:
            self._walk_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.runner.shutdown()
        self.live_index.shutdown()
        self.repository_side.shutdown()


def _exit_process(code: int) -> None:
    """Leave at once. Interpreter shutdown would join worker threads that may be in the
    middle of a model forward or an embedding batch, and editors kill a server that lingers."""
    logging.shutdown()
    os._exit(code)


def create_server(on_exit: Callable[[int], None] | None = None) -> CodemlmLanguageServer:
    """A server with every feature registered (a fresh one per call: tests and TCP clients
    start several). ``on_exit`` ends the session on ``exit`` (default: the process)."""
    check_pygls()
    server = CodemlmLanguageServer(on_exit)
    for module in (lifecycle, sync, completion, commands, symbols):
        module.register(server)
    return server
