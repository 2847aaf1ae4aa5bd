"""workspace/symbol, answered by the hybrid search over the live index."""

from __future__ import annotations

import logging

from lsprotocol import types

from codemlm.errors import CodemlmError
from lsp_server.context import ServerContext
from lsp_server.search_results import result_symbol

__all__ = ["MAX_SYMBOLS", "register"]

logger = logging.getLogger(__name__)

MAX_SYMBOLS = 50


async def on_workspace_symbol(
    ls: ServerContext, params: types.WorkspaceSymbolParams
) -> list[types.SymbolInformation]:
    query = params.query.strip()
    if not query:
        # An empty query asks for "all symbols": a ranked search has nothing to rank by.
        return []
    try:
        results = await ls.search(query, k=MAX_SYMBOLS)
    except CodemlmError as exc:
        logger.warning("workspace/symbol %r: %s", query, exc)
        return []
    ranges = ls.result_ranges()
    if ranges is None:
        return []
    return [result_symbol(result, ranges) for result in results]


def register(server: ServerContext) -> None:
    server.feature(types.WORKSPACE_SYMBOL)(on_workspace_symbol)
