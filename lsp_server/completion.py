"""textDocument/completion, completionItem/resolve and textDocument/inlineCompletion."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from codemlm.errors import CodemlmError
from lsp_server.context import ServerContext
from lsp_server.document import DocumentLines, position_encoding
from lsp_server.holes import Fill, Hole, StaleRequest, fills_for
from lsp_server.inference import Stale

if TYPE_CHECKING:
    from codemlm.infill import Candidate

__all__ = ["TRIGGER_CHARACTERS", "register"]

logger = logging.getLogger(__name__)

TRIGGER_CHARACTERS = [".", "(", "[", ","]
_LABEL_CHARS = 80
_PREVIEW_LINES = 3  # lines of context above and below the candidate in the documentation


def _empty(incomplete: bool = False) -> types.CompletionList:
    return types.CompletionList(is_incomplete=incomplete, items=[])


def _label(text: str) -> str:
    first, _, rest = text.strip("\n").partition("\n")
    label = first if len(first) <= _LABEL_CHARS else first[: _LABEL_CHARS - 1] + "…"
    return label + (" …" if rest.strip() else "")


def _detail(fill: Fill) -> str:
    return f"codemlm  {fill.source}  score {fill.score:.2f}" + ("" if fill.syntax_ok else "  (may not parse)")


def _range_json(value: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": value.start.line, "character": value.start.character},
        "end": {"line": value.end.line, "character": value.end.character},
    }


def _item(fill: Fill, rank: int, data: dict[str, Any]) -> types.CompletionItem:
    return types.CompletionItem(
        label=_label(fill.new_text),
        kind=types.CompletionItemKind.Text,
        detail=_detail(fill),
        sort_text=f"{rank:03d}",
        filter_text=fill.new_text,
        preselect=rank == 0,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=fill.range, new_text=fill.new_text),
        data={**data, "range": _range_json(fill.range), "newText": fill.new_text},
    )


def _single_line_at(fill: Fill, position: types.Position) -> bool:
    """Clients reject a completion edit that spans lines or misses the cursor."""
    start, end = fill.range.start, fill.range.end
    return (
        start.line == end.line == position.line and start.character <= position.character <= end.character
    )


async def _candidates(ls: ServerContext, hole: Hole) -> list[Candidate] | Stale | None:
    """The shared model run for the hole under the cursor; a hole the engine refuses is
    simply no completion (the user is typing, not asking)."""
    try:
        return await ls.holes.candidates(hole, ls.options.max_candidates)
    except CodemlmError as exc:
        logger.info("no completion at %s: %s", hole.uri, exc)
        return []


async def on_completion(ls: ServerContext, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    if not ls.options.completion_enabled:
        return _empty()
    try:
        hole = ls.holes.buffer_hole(uri, params.position, None)
    except StaleRequest:
        return _empty(incomplete=True)
    except CodemlmError as exc:
        logger.info("completion at %s %s: %s", uri, params.position, exc)
        return _empty()
    if not ls.options.language_enabled(hole.language):
        return _empty()
    candidates = await _candidates(ls, hole)
    if candidates is None:
        return _empty()
    if isinstance(candidates, Stale):
        # The buffer changed or the user moved on: ask again.
        return _empty(incomplete=True)
    fills = [f for f in fills_for(hole, candidates, include_word_prefix=True) if _single_line_at(f, params.position)]
    data = {"uri": uri, "version": hole.version, "language": hole.language}
    items = [_item(fill, rank, {**data, "score": fill.score}) for rank, fill in enumerate(fills)]
    # The model read the typed part of the word as context: typing more changes the answer.
    typing_a_word = any(fill.typed_prefix for fill in fills)
    return types.CompletionList(is_incomplete=typing_a_word, items=items)


def on_completion_resolve(ls: ServerContext, item: types.CompletionItem) -> types.CompletionItem:
    """Add the candidate shown in place, a few lines of the buffer around it."""
    data = item.data if isinstance(item.data, dict) else None
    if not data:
        return item
    try:
        preview = _preview(ls, data)
    except (CodemlmError, KeyError, TypeError, ValueError) as exc:
        logger.debug("no preview for %r: %s", item.label, exc)
        return item
    if preview is not None:
        item.documentation = types.MarkupContent(kind=types.MarkupKind.Markdown, value=preview)
    return item


def _preview(ls: ServerContext, data: dict[str, Any]) -> str | None:
    document = ls.workspace.text_documents.get(str(data["uri"]))
    new_text = str(data["newText"])
    language = data.get("language") or ""
    if document is None or document.version != data.get("version"):
        return None  # the buffer moved on: the context would be wrong
    edit = data["range"]
    start = types.Position(line=int(edit["start"]["line"]), character=int(edit["start"]["character"]))
    end = types.Position(line=int(edit["end"]["line"]), character=int(edit["end"]["character"]))
    lines = DocumentLines(document.source)
    lines.check_position(start)
    lines.check_position(end)
    first = max(0, start.line - _PREVIEW_LINES)
    last = min(lines.line_count - 1, end.line + _PREVIEW_LINES)
    encoding = position_encoding(ls.workspace.position_encoding)
    window = lines.window(first, last, encoding, before_chars=0, after_chars=0)
    a, b = window.byte_offset(start), window.byte_offset(end)
    shown = window.text_between(0, a) + new_text + window.text_between(b, len(window.data))
    body = shown.strip("\n").rstrip()
    fence = "````" if "```" in body else "```"
    return f"{fence}{language}\n{body}\n{fence}\n\nscore {data.get('score', 0.0):.2f}"


async def on_inline_completion(
    ls: ServerContext, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """The top candidate as ghost text at the cursor."""
    uri = params.text_document.uri
    empty = types.InlineCompletionList(items=[])
    if not ls.options.inline_completion_enabled:
        return empty
    if params.context.selected_completion_info is not None:
        # The suggestion widget is open: its items (ours among them) are the answer.
        return empty
    try:
        hole = ls.holes.buffer_hole(uri, params.position, None)
    except StaleRequest:
        return empty
    except CodemlmError as exc:
        logger.info("inline completion at %s %s: %s", uri, params.position, exc)
        return empty
    if not ls.options.language_enabled(hole.language):
        return empty
    candidates = await _candidates(ls, hole)
    if candidates is None or isinstance(candidates, Stale):
        return empty
    for fill in fills_for(hole, candidates, include_word_prefix=True):
        if fill.range.start.line == fill.range.end.line == params.position.line:
            item = types.InlineCompletionItem(insert_text=fill.new_text, range=fill.range, filter_text=fill.new_text)
            return types.InlineCompletionList(items=[item])
    return empty


def register(server: ServerContext) -> None:
    server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS, resolve_provider=True),
    )(on_completion)
    server.feature(types.COMPLETION_ITEM_RESOLVE)(on_completion_resolve)
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(on_inline_completion)
