"""Editor positions ↔ byte offsets, on a window of the live buffer around a request.

The library speaks byte offsets into UTF-8 text; LSP speaks (line, character) in the position
encoding negotiated at ``initialize`` (UTF-16 unless the client offers another). A request
only ever needs the text near the cursor (the infill engine reads a few hundred tokens), so
this module cuts a window of whole lines around the request first: converting positions,
encoding to UTF-8 and tokenizing then cost the same for a 50,000-line file as for a small
one. Lines follow the LSP definition (``\\n``, ``\\r\\n``, lone ``\\r``), as
:mod:`codemlm.positions` does.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import PurePosixPath

from lsprotocol import types

from codemlm.errors import InputError, PositionError
from codemlm.languages import language_for_path
from codemlm.positions import TextPositions

__all__ = [
    "DocumentLines",
    "TextWindow",
    "is_probably_binary",
    "language_for_document",
    "position_encoding",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# LSP languageId -> codemlm language name (docs/INTERFACES.md, codemlm/languages.py).
_LANGUAGE_IDS = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
}

# A window never spans more than this many characters of context on each side of the hole.
# Wide enough for the file's own names and analogous spans to be found (64% of identifier
# holes name something used elsewhere in the same file); the model itself reads only the
# last/next few hundred tokens, and the engine caps its candidate scan at 48K per side.
CONTEXT_CHARS_BEFORE = 48_000
CONTEXT_CHARS_AFTER = 48_000
# A single line longer than this (minified bundles, data blobs) gets no completion.
MAX_WINDOW_CHARS = 100_000


def language_for_document(language_id: str | None, uri: str) -> str | None:
    """The codemlm language of a buffer: its languageId, else its file extension."""
    if language_id and language_id in _LANGUAGE_IDS:
        return _LANGUAGE_IDS[language_id]
    language = language_for_path(PurePosixPath(uri.split("?", 1)[0]).name)
    return language.name if language is not None else None


def position_encoding(value: object) -> types.PositionEncodingKind:
    """The negotiated encoding as the enum. Never ``str()`` it: a str-mixin enum prints as
    ``PositionEncodingKind.Utf16``, not ``utf-16``."""
    try:
        return types.PositionEncodingKind(getattr(value, "value", value) or "utf-16")
    except ValueError:
        return types.PositionEncodingKind.Utf16


def is_probably_binary(text: str) -> bool:
    """NUL characters never occur in source code; a buffer holding them is binary content."""
    return "\x00" in text


class DocumentLines:
    """Line starts of one immutable text (a snapshot of a buffer), found at C speed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(match.end() for match in _LINE_BREAK.finditer(text))]

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def check_position(self, position: types.Position) -> None:
        if not 0 <= position.line < len(self.starts):
            raise PositionError(
                f"line {position.line} is outside the document (it has {len(self.starts)} lines)"
            )
        if position.character < 0:
            raise PositionError(f"character {position.character} is negative")

    def window(
        self,
        first_line: int,
        last_line: int,
        encoding: types.PositionEncodingKind,
        *,
        before_chars: int = CONTEXT_CHARS_BEFORE,
        after_chars: int = CONTEXT_CHARS_AFTER,
    ) -> TextWindow:
        """Whole lines around ``first_line..last_line`` (inclusive), with up to
        ``before_chars``/``after_chars`` characters of context on either side."""
        starts, text = self.starts, self.text
        hole_start, hole_end = starts[first_line], self._line_end(last_line)
        # Whole lines only: the first line that starts at or after the context limit.
        lo_line = bisect_right(starts, max(0, hole_start - before_chars) - 1)
        lo_line = min(lo_line, first_line)
        if hole_end + after_chars >= len(text):
            hi_line = len(starts) - 1
        else:
            hi_line = max(bisect_right(starts, hole_end + after_chars) - 2, last_line)
        start, end = starts[lo_line], self._line_end(hi_line)
        if end - start > MAX_WINDOW_CHARS and hole_end - hole_start <= MAX_WINDOW_CHARS:
            # Context lines that are too long: keep only the lines of the request itself.
            lo_line, hi_line = first_line, last_line
            start, end = hole_start, hole_end
        if end - start > MAX_WINDOW_CHARS:
            raise InputError(
                f"lines {first_line}-{last_line} hold {end - start} characters; too long to complete in"
            )
        return TextWindow(text[start:end], lo_line, start, encoding)

    def _line_end(self, line: int) -> int:
        """Index just past ``line``'s content (before its terminator)."""
        if line + 1 < len(self.starts):
            end = self.starts[line + 1]
            text = self.text
            if text.startswith("\r\n", end - 2):
                return end - 2
            return end - 1
        return len(self.text)


@dataclass
class TextWindow:
    """A run of whole lines of a document; converts document positions ↔ window bytes."""

    text: str
    first_line: int  # document line of the window's first line
    start_char: int  # code-point index of the window in the document
    encoding: types.PositionEncodingKind  # negotiated at initialize

    def __post_init__(self) -> None:
        # Lone surrogates (a client sending "\ud800") cannot be UTF-8: the buffer is not text.
        try:
            self.data = self.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"buffer is not valid Unicode text: {exc.reason}") from exc
        self.positions = TextPositions(self.text)

    def byte_offset(self, position: types.Position) -> int:
        """Byte offset in ``self.data`` of a document position (raises PositionError)."""
        line = position.line - self.first_line
        if not 0 <= line < self.positions.line_count:
            raise PositionError(f"line {position.line} is outside the window of this request")
        if self.encoding == types.PositionEncodingKind.Utf16:
            return self.positions.offset_utf16(line, position.character)
        if self.encoding == types.PositionEncodingKind.Utf32:
            return self.positions.offset(line, position.character)
        # UTF-8: the character is already a byte count within the line.
        content = self.positions.line_text(line).encode("utf-8")
        if position.character > len(content):
            raise PositionError(
                f"UTF-8 character {position.character} is past the end of line {position.line} "
                f"(length {len(content)} bytes)"
            )
        if position.character < len(content) and (content[position.character] & 0xC0) == 0x80:
            raise PositionError(f"UTF-8 character {position.character} falls inside a character")
        return self.positions.offset(line, 0) + position.character

    def position(self, byte_offset: int) -> types.Position:
        """The document position of a byte offset in ``self.data``."""
        if self.encoding == types.PositionEncodingKind.Utf16:
            line, character = self.positions.utf16(byte_offset)
        else:
            line, column = self.positions.line_col(byte_offset)
            if self.encoding == types.PositionEncodingKind.Utf32:
                character = column
            else:
                character = byte_offset - self.positions.offset(line, 0)
        return types.Position(line=line + self.first_line, character=character)

    def range(self, start_byte: int, end_byte: int) -> types.Range:
        return types.Range(start=self.position(start_byte), end=self.position(end_byte))

    def text_between(self, start_byte: int, end_byte: int) -> str:
        return self.data[start_byte:end_byte].decode("utf-8", errors="replace")
