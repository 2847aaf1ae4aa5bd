"""initialize / initialized / shutdown and settings changes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from lsp_server.context import ServerContext
from lsp_server.options import parse_options
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


def on_initialize(ls: ServerContext, params: types.InitializeParams) -> None:
    options, problems = parse_options(params.initialization_options)
    ls.start_session(options, problems, _workspace_root(params), list(params.workspace_folders or []))


async def on_initialized(ls: ServerContext, params: types.InitializedParams) -> None:
    ls.show_settings_problems(ls.take_settings_problems())
    ls.send_status("indexing", "loading the model")
    ls.load_model()
    ls.spawn(ls.reindex())
    await register_file_watcher(ls)


def on_shutdown(ls: ServerContext, params: None) -> None:
    ls.request_shutdown()


def on_exit(ls: ServerContext, params: None) -> None:
    ls.exit()


async def on_did_change_configuration(
    ls: ServerContext, params: types.DidChangeConfigurationParams
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
    ls.apply_options(new)


async def _pull_settings(ls: ServerContext) -> Any:
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


def register(server: ServerContext) -> None:
    server.feature(types.INITIALIZE)(on_initialize)
    server.feature(types.INITIALIZED)(on_initialized)
    server.feature(types.SHUTDOWN)(on_shutdown)
    server.feature(types.EXIT)(on_exit)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(on_did_change_configuration)
