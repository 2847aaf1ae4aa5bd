"""Positions in a text: (line, column) ↔ byte offset.

Byte offsets index the UTF-8 encoding of the text (the contract between tree-sitter, the
tokenizer and editors). Lines are 0-based. Columns come in two units:

* code points (``line_col`` functions): what the CLI and the library use;
* UTF-16 code units (``utf16`` functions): what the Language Server Protocol uses by default
  (a character outside the Basic Multilingual Plane counts as two).

Line terminators are ``\\n``, ``\\r\\n`` and a lone ``\\r`` (as in the LSP specification).
A column counts characters of the line's content, so the largest valid column is the
length of the line without its terminator. An offset between the ``\\r`` and the ``\\n`` of a
CRLF pair maps to the end of that line (the only offset that does not round-trip).
Anything outside the text raises :class:`~codemlm.errors.PositionError` with a message that
says which limit was crossed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from codemlm.errors import PositionError

__all__ = [
    "TextPositions",
    "line_col_from_offset",
    "offset_from_line_col",
    "offset_from_utf16",
    "utf16_from_offset",
]


def _utf8_len(ch: str) -> int:
    cp = ord(ch)
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _utf16_len(ch: str) -> int:
    return 2 if ord(ch) >= 0x10000 else 1


@dataclass
class TextPositions:
    """An index of line starts over one text, for repeated conversions.

    Building it is O(len(text)); each conversion is O(log lines + line length).
    """

    text: str
    # Code-point index of the first character of each line, and of its terminator.
    _line_starts: list[int] = field(init=False, repr=False)
    _line_ends: list[int] = field(init=False, repr=False)
    # Byte offset of each line start (parallel to _line_starts).
    _byte_starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        starts, ends, byte_starts = [0], [], [0]
        text = self.text
        i, n, byte_pos = 0, len(text), 0
        line_bytes = 0
        while i < n:
            ch = text[i]
            if ch == "\n" or ch == "\r":
                ends.append(i)
                width = 2 if ch == "\r" and i + 1 < n and text[i + 1] == "\n" else 1
                byte_pos += line_bytes + width
                line_bytes = 0
                i += width
                starts.append(i)
                byte_starts.append(byte_pos)
                continue
            line_bytes += _utf8_len(ch)
            i += 1
        ends.append(n)
        self._line_starts, self._line_ends, self._byte_starts = starts, ends, byte_starts
        self._total_bytes = byte_pos + line_bytes

    @property
    def line_count(self) -> int:
        """Number of lines; a text ending in a newline has an empty last line."""
        return len(self._line_starts)

    @property
    def byte_length(self) -> int:
        return self._total_bytes

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its terminator."""
        self._check_line(line)
        return self.text[self._line_starts[line] : self._line_ends[line]]

    # -- code-point columns ------------------------------------------------------------

    def offset(self, line: int, column: int) -> int:
        """Byte offset of (line, column in code points); a column past the line's end is an error."""
        content = self._content(line, column, unit="character")
        return self._byte_starts[line] + sum(_utf8_len(ch) for ch in content[:column])

    def line_col(self, offset: int) -> tuple[int, int]:
        """(line, column in code points) of a byte offset."""
        line, chars = self._locate(offset)
        return line, len(chars)

    # -- UTF-16 columns (LSP) ----------------------------------------------------------

    def offset_utf16(self, line: int, character: int) -> int:
        """Byte offset of an LSP position (line, UTF-16 code units)."""
        content = self._content(line, character, unit="UTF-16 unit")
        units = 0
        byte = self._byte_starts[line]
        for ch in content:
            if units >= character:
                break
            width = _utf16_len(ch)
            if units + width > character:
                raise PositionError(
                    f"line {line}, UTF-16 character {character} falls inside a surrogate pair"
                )
            units += width
            byte += _utf8_len(ch)
        if units < character:
            raise PositionError(
                f"UTF-16 character {character} is past the end of line {line} "
                f"(length {units} UTF-16 units)"
            )
        return byte

    def utf16(self, offset: int) -> tuple[int, int]:
        """LSP position (line, UTF-16 code units) of a byte offset."""
        line, chars = self._locate(offset)
        return line, sum(_utf16_len(ch) for ch in chars)

    # -- internals ---------------------------------------------------------------------

    def _check_line(self, line: int) -> None:
        if not 0 <= line < len(self._line_starts):
            raise PositionError(
                f"line {line} is outside the text (0-based, it has {len(self._line_starts)} lines)"
            )

    def _content(self, line: int, column: int, *, unit: str) -> str:
        self._check_line(line)
        if column < 0:
            raise PositionError(f"{unit} column {column} is negative")
        content = self.text[self._line_starts[line] : self._line_ends[line]]
        if unit == "character" and column > len(content):
            raise PositionError(
                f"column {column} is past the end of line {line} (length {len(content)} characters)"
            )
        return content

    def _locate(self, offset: int) -> tuple[int, str]:
        """Line of a byte offset and the characters of that line before it."""
        if not 0 <= offset <= self._total_bytes:
            raise PositionError(
                f"byte offset {offset} is outside the text (length {self._total_bytes} bytes)"
            )
        line = bisect.bisect_right(self._byte_starts, offset) - 1
        byte = self._byte_starts[line]
        start, end = self._line_starts[line], self._line_ends[line]
        i = start
        while byte < offset and i < end:
            byte += _utf8_len(self.text[i])
            i += 1
        if byte > offset:
            raise PositionError(f"byte offset {offset} falls inside a multi-byte UTF-8 character")
        # byte < offset here only between the \r and \n of a CRLF: the end of the line.
        return line, self.text[start:i]


def offset_from_line_col(text: str, line: int, column: int) -> int:
    """Byte offset of (0-based line, column in code points) in ``text``."""
    return TextPositions(text).offset(line, column)


def line_col_from_offset(text: str, offset: int) -> tuple[int, int]:
    """(0-based line, column in code points) of a byte offset in ``text``."""
    return TextPositions(text).line_col(offset)


def offset_from_utf16(text: str, line: int, character: int) -> int:
    """Byte offset of an LSP position (0-based line, UTF-16 character)."""
    return TextPositions(text).offset_utf16(line, character)


def utf16_from_offset(text: str, offset: int) -> tuple[int, int]:
    """LSP position (0-based line, UTF-16 character) of a byte offset."""
    return TextPositions(text).utf16(offset)
