"""What a handler may ask of the server: the one interface between the feature modules
(``lifecycle``, ``sync``, ``completion``, ``commands``, ``symbols``) and the server.

The feature modules depend on this protocol, never on :mod:`lsp_server.server`, which
imports them to register their handlers: the arrows point one way. Reading state is open
(``options``, ``root``); changing it goes through the server's methods (``start_session``,
``apply_options``, ``schedule_walk``, ``request_shutdown``, ``exit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.workspace import Workspace

    from codemlm.search import SearchResult
    from lsp_server.holes import HoleService
    from lsp_server.inference import LatestRequestRunner
    from lsp_server.live_index import LiveIndex
    from lsp_server.options import ServerOptions
    from lsp_server.search_results import ResultRanges

__all__ = ["ServerContext"]

T = TypeVar("T")
Handler = Callable[..., Any]


class ServerContext(Protocol):
    runner: LatestRequestRunner
    live_index: LiveIndex
    holes: HoleService

    # ------------------------------------------------------------------ state (read-only)
    @property
    def options(self) -> ServerOptions: ...

    @property
    def root(self) -> Path | None: ...

    @property
    def indexing(self) -> bool: ...

    @property
    def workspace(self) -> Workspace: ...

    @property
    def client_capabilities(self) -> types.ClientCapabilities: ...

    # ------------------------------------------------------------------ state changes
    def start_session(
        self, options: ServerOptions, problems: list[str], root: Path | None, folders: list[types.WorkspaceFolder]
    ) -> None: ...

    def take_settings_problems(self) -> list[str]: ...

    def apply_options(self, new: ServerOptions) -> None: ...

    def schedule_walk(self) -> None: ...

    def request_shutdown(self) -> None: ...

    def exit(self) -> None: ...

    # ------------------------------------------------------------------ services
    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]: ...

    def load_model(self) -> Any: ...

    async def reindex(self, *, reopen: bool = False) -> dict[str, Any]: ...

    async def search(
        self, query: str, *, k: int, language: str | None = None, path_glob: str | None = None
    ) -> list[SearchResult]: ...

    def result_ranges(self) -> ResultRanges | None: ...

    def relative_path(self, uri: str) -> str | None: ...

    # ------------------------------------------------------------------ talking to the client
    def send_status(self, state: str, message: str) -> None: ...

    def show_settings_problems(self, problems: list[str]) -> None: ...

    async def workspace_configuration_async(self, params: types.ConfigurationParams) -> Sequence[Any | None]: ...

    async def workspace_apply_edit_async(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult: ...

    async def client_register_capability_async(self, params: types.RegistrationParams) -> None: ...

    # ------------------------------------------------------------------ registration (pygls)
    def feature(self, feature_name: str, options: Any | None = None) -> Callable[[Handler], Handler]: ...

    def command(self, command_name: str) -> Callable[[Handler], Handler]: ...
