"""Line/column ↔ byte offset conversions, in code points and in UTF-16 units."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codemlm.errors import PositionError
from codemlm.positions import (
    TextPositions,
    line_col_from_offset,
    offset_from_line_col,
    offset_from_utf16,
    utf16_from_offset,
)

# Text with plenty of line terminators and characters of every UTF-8 width.
_ALPHABET = st.sampled_from(["a", "é", "€", "😀", "\n", "\r", "\r\n", "\t", " ", "中"])
texts = st.lists(_ALPHABET, max_size=60).map("".join) | st.text(max_size=60)


def _valid_offsets(text: str) -> list[int]:
    """Byte offsets at character boundaries, except the one inside each CRLF."""
    offsets, pos = [0], 0
    for i, ch in enumerate(text):
        pos += len(ch.encode("utf-8"))
        if ch == "\r" and text[i + 1 : i + 2] == "\n":
            continue
        offsets.append(pos)
    return offsets


def test_simple_lines_and_columns() -> None:
    text = "ab\ncdé\n€x"
    assert offset_from_line_col(text, 0, 0) == 0
    assert offset_from_line_col(text, 1, 2) == 5
    assert offset_from_line_col(text, 1, 3) == 7  # after é (2 bytes)
    assert offset_from_line_col(text, 2, 1) == 11  # after € (3 bytes)
    assert line_col_from_offset(text, 11) == (2, 1)
    assert line_col_from_offset(text, len(text.encode())) == (2, 2)


def test_crlf_and_lone_cr_terminate_lines() -> None:
    text = "a\r\nbc\rd"
    pos = TextPositions(text)
    assert pos.line_count == 3
    assert pos.line_text(0) == "a"
    assert pos.offset(1, 0) == 3
    assert pos.offset(2, 1) == 7
    # Between \r and \n: the end of line 0.
    assert pos.line_col(2) == (0, 1)


def test_utf16_columns_count_astral_characters_twice() -> None:
    text = "x😀y\n"
    assert offset_from_utf16(text, 0, 3) == 5  # after x and the emoji (1 + 4 bytes)
    assert utf16_from_offset(text, 5) == (0, 3)
    assert offset_from_line_col(text, 0, 2) == 5
    with pytest.raises(PositionError, match="surrogate pair"):
        offset_from_utf16(text, 0, 2)


def test_text_ending_in_newline_has_an_empty_last_line() -> None:
    pos = TextPositions("a\n")
    assert pos.line_count == 2
    assert pos.offset(1, 0) == 2
    with pytest.raises(PositionError, match="past the end of line 1"):
        pos.offset(1, 1)


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        (5, 0, "line 5 is outside the text"),
        (-1, 0, "line -1 is outside the text"),
        (0, 9, "column 9 is past the end of line 0"),
        (0, -1, "negative"),
    ],
)
def test_positions_outside_the_text_raise(line: int, column: int, message: str) -> None:
    with pytest.raises(PositionError, match=message):
        offset_from_line_col("abc\nde", line, column)


def test_a_column_past_the_line_end_is_an_error() -> None:
    with pytest.raises(PositionError, match="past the end"):
        offset_from_line_col("abc\nde", 0, 40)
    with pytest.raises(PositionError, match="past the end"):
        offset_from_utf16("abc\nde", 1, 40)


def test_bad_offsets_raise() -> None:
    with pytest.raises(PositionError, match="outside the text"):
        line_col_from_offset("abc", 4)
    with pytest.raises(PositionError, match="outside the text"):
        utf16_from_offset("abc", -1)
    with pytest.raises(PositionError, match="inside a multi-byte"):
        line_col_from_offset("é", 1)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_offsets_round_trip_through_both_column_units(text: str) -> None:
    pos = TextPositions(text)
    encoded = text.encode("utf-8")
    assert pos.byte_length == len(encoded)
    for offset in _valid_offsets(text):
        line, col = pos.line_col(offset)
        assert pos.offset(line, col) == offset
        line16, char16 = pos.utf16(offset)
        assert line16 == line
        assert pos.offset_utf16(line16, char16) == offset
        # The column really counts the characters of the line before the offset.
        line_start = pos.offset(line, 0)
        assert encoded[line_start:offset].decode("utf-8").rstrip("\r") == pos.line_text(line)[:col]


@settings(max_examples=100, deadline=None)
@given(texts)
def test_line_texts_rebuild_the_document(text: str) -> None:
    pos = TextPositions(text)
    lines = [pos.line_text(i) for i in range(pos.line_count)]
    assert "".join(lines) == text.replace("\r\n", "").replace("\r", "").replace("\n", "")
    assert len(lines) == 1 + text.count("\n") + text.count("\r") - text.count("\r\n")
