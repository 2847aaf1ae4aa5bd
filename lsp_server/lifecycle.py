"""initialize / initialized / shutdown and settings changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from lsp_server.document import LspLinesWorkspace
from lsp_server.options import parse_options
from lsp_server.server import CodemlmLanguageServer
from lsp_server.sync import register_file_watcher

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _workspace_root(params: types.InitializeParams) -> Path | None:
    """The folder to index: rootUri/rootPath, else the first workspace folder."""
    candidates: list[str | None] = []
    if params.root_uri:
        candidates.append(to_fs_path(params.root_uri))
    if params.root_path:
        candidates.append(params.root_path)
    for folder in params.workspace_folders or []:
        candidates.append(to_fs_path(folder.uri))
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


def on_initialize(ls: CodemlmLanguageServer, params: types.InitializeParams) -> None:
    # pygls built its workspace a moment ago (no documents yet): the same one, with LSP lines.
    current = ls.protocol.workspace
    ls.protocol._workspace = LspLinesWorkspace(
        current.root_uri,
        ls._text_document_sync_kind,
        params.workspace_folders or [],
        current.position_encoding,
    )
    ls.options, ls.pending_problems = parse_options(params.initialization_options)
    ls.root = _workspace_root(params)
    logger.info("workspace root %s; options %s", ls.root, ls.options)


async def on_initialized(ls: CodemlmLanguageServer, params: types.InitializedParams) -> None:
    ls.show_settings_problems(ls.pending_problems)
    ls.pending_problems = []
    ls.send_status("indexing", "loading the model")
    ls.load_model()
    ls.spawn(ls.reindex())
    await register_file_watcher(ls)


def on_shutdown(ls: CodemlmLanguageServer, params: None) -> None:
    ls.shutdown_requested = True
    ls.stop_background()


def on_exit(ls: CodemlmLanguageServer, params: None) -> None:
    """Leave at once. Interpreter shutdown would join worker threads that may be in the
    middle of a model forward or an embedding batch, and editors kill a server that lingers."""
    ls.stop_background()
    logging.shutdown()
    os._exit(0 if ls.shutdown_requested else 1)


async def on_did_change_configuration(
    ls: CodemlmLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    """Apply a new settings snapshot. VS Code pushes ``{"codemlm": {...}}``; other clients
    send nothing useful and are asked (``workspace/configuration``). A client with no
    ``codemlm`` settings at all keeps what ``initializationOptions`` set."""
    settings: Any = params.settings
    if not (isinstance(settings, dict) and "codemlm" in settings):
        settings = await _pull_settings(ls)
    if settings is None:
        return
    new, problems = parse_options(settings)
    ls.show_settings_problems(problems)
    old, ls.options = ls.options, new
    if new.model_dir != old.model_dir:
        ls.load_model()
        ls.spawn(ls.reindex(reopen=True))
    elif new.index_path != old.index_path:
        ls.spawn(ls.reindex(reopen=True))


async def _pull_settings(ls: CodemlmLanguageServer) -> Any:
    workspace = ls.client_capabilities.workspace
    if workspace is None or not workspace.configuration:
        return None
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="codemlm")])
        )
    except Exception:  # the client failed to answer: keep the current settings
        logger.warning("workspace/configuration failed", exc_info=True)
        return None
    if not result or result[0] is None:
        return None
    return {"codemlm": result[0]}


def register(server: CodemlmLanguageServer) -> None:
    server.feature(types.INITIALIZE)(on_initialize)
    server.feature(types.INITIALIZED)(on_initialized)
    server.feature(types.SHUTDOWN)(on_shutdown)
    server.feature(types.EXIT)(on_exit)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(on_did_change_configuration)
