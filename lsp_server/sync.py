"""Document and file events: keep in-flight requests honest and the index current."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp_server.context import ServerContext
from lsp_server.document import is_probably_binary

__all__ = ["register", "register_file_watcher"]

logger = logging.getLogger(__name__)

_WATCHER_ID = "codemlm-watched-files"


def _buffer_text(ls: ServerContext, uri: str) -> str | None:
    document = ls.workspace.text_documents.get(uri)
    if document is None:
        return None
    text = document.source
    return None if is_probably_binary(text) else text


def on_did_open(ls: ServerContext, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.runner.invalidate(uri)
    rel_path = ls.relative_path(uri)
    text = _buffer_text(ls, uri)
    if rel_path is not None and text is not None:
        ls.live_index.buffer_opened(rel_path, text)


def on_did_change(ls: ServerContext, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    # Completions computed on the old text would carry ranges into text that is gone.
    ls.runner.invalidate(uri)
    rel_path = ls.relative_path(uri)
    text = _buffer_text(ls, uri)
    if rel_path is not None and text is not None:
        ls.live_index.buffer_changed(rel_path, text)


def on_did_save(ls: ServerContext, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    rel_path = ls.relative_path(uri)
    text = params.text if params.text is not None else _buffer_text(ls, uri)
    if rel_path is not None and text is not None and not is_probably_binary(text):
        ls.live_index.buffer_changed(rel_path, text)


async def on_did_close(ls: ServerContext, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.runner.forget(uri)
    ls.holes.forget(uri)
    rel_path = ls.relative_path(uri)
    if rel_path is not None:
        await ls.live_index.buffer_closed(rel_path)


def on_did_change_watched_files(ls: ServerContext, params: types.DidChangeWatchedFilesParams) -> None:
    """Files changed outside the editor: one incremental walk after the burst. A walk (not
    per-file updates) keeps the corpus filters (gitignore, vendored, generated) in force.
    A save from the editor also reports a change; the buffer already covers that one."""
    open_documents = ls.workspace.text_documents
    relevant = [
        change
        for change in params.changes
        if ls.relative_path(change.uri) is not None
        and not (change.type == types.FileChangeType.Changed and change.uri in open_documents)
    ]
    if relevant:
        ls.schedule_walk()


async def register_file_watcher(ls: ServerContext) -> None:
    """Ask the client to watch source files for us, when it can register watchers."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace is not None else None
    if watched is None or not watched.dynamic_registration:
        return
    from codemlm.languages import supported_extensions

    extensions = ",".join(sorted(ext.lstrip(".") for ext in supported_extensions()))
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=f"**/*.{{{extensions}}}")]
    )
    registration = types.Registration(
        id=_WATCHER_ID, method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
    )
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    except Exception:  # not fatal: the index is still kept current from open buffers
        logger.warning("the client did not register the file watcher", exc_info=True)


def register(server: ServerContext) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(on_did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(on_did_change)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(on_did_save)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(on_did_close)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(on_did_change_watched_files)
