"""workspace/executeCommand: ``codemlm.search``, ``codemlm.reindex``, ``codemlm.fillSelection``;
and the code action that offers ``codemlm.fillSelection`` on a selection.

Arguments follow docs/INTERFACES.md. They arrive as plain JSON, so each command checks its
own and answers ``InvalidParams`` with a sentence saying what is wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcInvalidParams

from codemlm.errors import CodemlmError
from lsp_server.context import ServerContext
from lsp_server.document import language_for_document
from lsp_server.holes import StaleRequest, fills_for
from lsp_server.inference import Stale
from lsp_server.search_results import result_json

__all__ = ["FILL_SELECTION", "REINDEX", "SEARCH", "register"]

logger = logging.getLogger(__name__)

SEARCH = "codemlm.search"
REINDEX = "codemlm.reindex"
FILL_SELECTION = "codemlm.fillSelection"
_MAX_K = 200
_MAX_QUERY_CHARS = 2000
_CONVERTER = get_converter()


def _single_object(command: str, args: tuple[Any, ...]) -> dict[str, Any]:
    if len(args) != 1 or not isinstance(args[0], dict):
        raise JsonRpcInvalidParams(f"{command} takes one object argument, got {list(args)!r}"[:300])
    return args[0]


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JsonRpcInvalidParams(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _optional_str(arg: dict[str, Any], name: str) -> str | None:
    value = arg.get(name)
    if value is not None and not isinstance(value, str):
        raise JsonRpcInvalidParams(f"{name} must be a string, got {value!r}")
    return value


async def search_command(ls: ServerContext, *args: Any) -> list[dict[str, Any]]:
    arg = _single_object(SEARCH, args)
    query = arg.get("query")
    if not isinstance(query, str) or not query.strip():
        raise JsonRpcInvalidParams(f"query must be a non-empty string, got {query!r}")
    if len(query) > _MAX_QUERY_CHARS:
        raise JsonRpcInvalidParams(f"query is longer than {_MAX_QUERY_CHARS} characters")
    k = _int_in(arg.get("k", 10), "k", 1, _MAX_K)
    language = _optional_str(arg, "language")
    path_glob = _optional_str(arg, "pathGlob")
    try:
        results = await ls.search(query, k=k, language=language, path_glob=path_glob)
    except CodemlmError as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    ranges = ls.result_ranges()
    if ranges is None:
        return []
    return [result_json(result, ranges) for result in results]


async def reindex_command(ls: ServerContext, *args: Any) -> dict[str, Any]:
    """Start an incremental re-index and answer at once (progress and ``codemlm/status``
    report it); with ``[{"wait": true}]`` answer when it is done, with what it did."""
    wait = False
    if args and args != ({},):
        arg = _single_object(REINDEX, args)
        unknown = set(arg) - {"wait"}
        if unknown or not isinstance(arg.get("wait", False), bool):
            raise JsonRpcInvalidParams(f"{REINDEX} takes no arguments or {{\"wait\": bool}}, got {arg!r}"[:300])
        wait = bool(arg.get("wait", False))
    if wait:
        return await ls.reindex()
    ls.spawn(ls.reindex())
    return {"started": True}


def _range_argument(value: Any) -> types.Range:
    try:
        result = _CONVERTER.structure(value, types.Range)
    except Exception as exc:  # cattrs raises its own validation error types
        raise JsonRpcInvalidParams(f"range must be an LSP Range, got {value!r}"[:300]) from exc
    if not isinstance(result, types.Range):
        raise JsonRpcInvalidParams("range must be an LSP Range")
    return result


async def fill_selection_command(ls: ServerContext, *args: Any) -> list[dict[str, Any]]:
    """Fill the selected span with the model's candidates; apply the best one unless
    ``"apply": false``. Returns ``[{"text", "score", "syntaxOk"}]`` best first."""
    arg = _single_object(FILL_SELECTION, args)
    uri = arg.get("uri")
    if not isinstance(uri, str) or not uri:
        raise JsonRpcInvalidParams(f"uri must be a document URI, got {uri!r}")
    selection = _range_argument(arg.get("range"))
    apply = arg.get("apply", True)
    if not isinstance(apply, bool):
        raise JsonRpcInvalidParams(f"apply must be true or false, got {apply!r}")
    k = _int_in(arg.get("k", ls.options.max_candidates), "k", 1, 20)
    try:
        # An open buffer, else a regular file inside the workspace, read off the event loop.
        hole = await ls.holes.file_hole(uri, selection.start, selection.end)
    except StaleRequest:
        return []
    except CodemlmError as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    if not ls.options.language_enabled(hole.language):
        raise JsonRpcInvalidParams(f"completion is off for {hole.language or 'this language'} ({uri})")
    try:
        candidates = await ls.holes.candidates(hole, k, kind="fill")
    except CodemlmError as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    if candidates is None or isinstance(candidates, Stale):
        return []
    fills = fills_for(hole, candidates, include_word_prefix=False)
    if apply and fills:
        await _apply(ls, uri, hole.version, fills[0].range, fills[0].new_text)
    return [{"text": fill.new_text, "score": fill.score, "syntaxOk": fill.syntax_ok} for fill in fills]


async def _apply(ls: ServerContext, uri: str, version: int | None, where: types.Range, text: str) -> None:
    edit = types.TextEdit(range=where, new_text=text)
    workspace = ls.client_capabilities.workspace
    edit_caps = workspace.workspace_edit if workspace is not None else None
    if edit_caps is not None and edit_caps.document_changes:
        # Versioned: the client refuses the edit if the buffer changed meanwhile.
        document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        workspace_edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=document, edits=[edit])])
    else:
        workspace_edit = types.WorkspaceEdit(changes={uri: [edit]})
    result = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=workspace_edit, label="codemlm: fill selection")
    )
    if result is not None and not result.applied:
        logger.warning("the client did not apply the fill: %s", result.failure_reason)


def on_code_action(ls: ServerContext, params: types.CodeActionParams) -> list[types.CodeAction]:
    selection = params.range
    if (selection.start.line, selection.start.character) == (selection.end.line, selection.end.character):
        return []
    if not ls.options.completion_enabled:
        return []
    uri = params.text_document.uri
    document = ls.workspace.text_documents.get(uri)
    language = language_for_document(document.language_id if document else None, uri)
    if not ls.options.language_enabled(language):
        return []
    argument = {
        "uri": uri,
        "range": {
            "start": {"line": selection.start.line, "character": selection.start.character},
            "end": {"line": selection.end.line, "character": selection.end.character},
        },
    }
    title = "Fill selection with codemlm"
    return [
        types.CodeAction(
            title=title,
            kind=types.CodeActionKind.RefactorRewrite,
            command=types.Command(title=title, command=FILL_SELECTION, arguments=[argument]),
        )
    ]


def register(server: ServerContext) -> None:
    server.command(SEARCH)(search_command)
    server.command(REINDEX)(reindex_command)
    server.command(FILL_SELECTION)(fill_selection_command)
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
    )(on_code_action)
