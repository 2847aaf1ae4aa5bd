"""Search results (``codemlm.search.SearchResult``) as LSP locations, symbols and JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from lsp_server.document import DocumentLines
from lsp_server.files import read_text_or_none

if TYPE_CHECKING:
    from codemlm.search import SearchResult

__all__ = ["SYMBOL_KINDS", "ResultRanges", "result_json", "result_symbol"]

# Chunk kinds from codemlm/index.py. A "block" is top-level code between definitions
# (statements, assignments): the nearest LSP kind for "a named run of module code".
SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "block": types.SymbolKind.Module,
}


class ResultRanges:
    """Editor ranges of results: whole lines, ending at the end of the last line in the
    client's position encoding. Reads each file once per search (the open buffer if the
    editor has one, since that is what was indexed)."""

    def __init__(self, root: Path, encoding: types.PositionEncodingKind, buffer_text: Callable[[str], str | None]) -> None:
        self._root = root
        self._codec = PositionCodec(encoding)
        self._buffer_text = buffer_text
        self._lines: dict[str, DocumentLines | None] = {}

    def uri(self, result: SearchResult) -> str:
        return (self._root / result.path).as_uri()

    def range(self, result: SearchResult) -> types.Range:
        start = types.Position(line=result.start_line, character=0)
        lines = self._file_lines(result.path)
        if lines is None or result.end_line >= lines.line_count:
            # Unreadable or changed since indexing: the start of the next line ends the range.
            return types.Range(start=start, end=types.Position(line=result.end_line + 1, character=0))
        begin = lines.starts[result.end_line]
        content = lines.text[begin : lines.starts[result.end_line + 1] if result.end_line + 1 < lines.line_count else None]
        content = content.rstrip("\r\n")
        end = types.Position(line=result.end_line, character=self._codec.client_num_units(content))
        return types.Range(start=start, end=end)

    def _file_lines(self, rel_path: str) -> DocumentLines | None:
        if rel_path not in self._lines:
            uri = (self._root / rel_path).as_uri()
            text = self._buffer_text(uri)
            if text is None:
                text = read_text_or_none(self._root / rel_path)
            self._lines[rel_path] = DocumentLines(text) if text is not None else None
        return self._lines[rel_path]


def result_json(result: SearchResult, ranges: ResultRanges) -> dict[str, Any]:
    """One ``codemlm.search`` result (docs/INTERFACES.md), plus path and language."""
    value = ranges.range(result)
    return {
        "uri": ranges.uri(result),
        "range": {
            "start": {"line": value.start.line, "character": value.start.character},
            "end": {"line": value.end.line, "character": value.end.character},
        },
        "name": result.name,
        "kind": result.kind,
        "score": result.score,
        "snippet": result.snippet,
        "path": result.path,
        "language": result.language,
    }


def result_symbol(result: SearchResult, ranges: ResultRanges) -> types.SymbolInformation:
    return types.SymbolInformation(
        name=result.name,
        kind=SYMBOL_KINDS.get(result.kind, types.SymbolKind.Object),
        location=types.Location(uri=ranges.uri(result), range=ranges.range(result)),
        container_name=result.path,
    )
