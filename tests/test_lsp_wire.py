"""The wire layer on its own: framing that survives mis-framed input, and the JSON-RPC envelope."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from lsp_server import wire


class _Bytes:
    """A ``wire.LineReader`` over fixed bytes, with the same piece size as the real readers."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.largest_read = 0

    async def readline(self) -> bytes:
        end = self._data.find(b"\n", 0, wire.MAX_LINE)
        cut = end + 1 if end >= 0 else min(len(self._data), wire.MAX_LINE)
        line, self._data = self._data[:cut], self._data[cut:]
        return line

    async def read(self, n: int) -> bytes:
        self.largest_read = max(self.largest_read, n)
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _read(data: bytes) -> tuple[list[Any], list[str], _Bytes]:
    bodies: list[Any] = []
    problems: list[str] = []
    reader = _Bytes(data)

    def on_body(body: bytes) -> bool:
        try:
            bodies.append(json.loads(body))
        except ValueError:
            bodies.append(None)
            return False
        return True

    asyncio.run(wire.read_frames(reader, on_body, problems.append))
    return bodies, problems, reader


PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
PING_BODY = json.dumps(PING).encode()

# Each case: bytes a broken client sends before a good message; the good one must get through.
FRAMING = {
    "no header": PING_BODY + b"\r\n",
    "garbage line": b"hello there\r\n",
    "not a number": b"Content-Length: abc\r\n\r\n{}",
    "negative": b"Content-Length: -5\r\n\r\n",
    "10^12": b"Content-Length: 1000000000000\r\n\r\n",
    "20 digits": b"Content-Length: 99999999999999999999\r\n\r\n",
    "too short": b"Content-Length: 5\r\n\r\n" + PING_BODY,
    "too long": b"Content-Length: %d\r\n\r\n" % (len(PING_BODY) + 12) + PING_BODY,
    "zero": b"Content-Length: 0\r\n\r\n",
    "bare newlines": b"Content-Length: %d\n\n" % len(PING_BODY) + PING_BODY,
    "lower case": b"content-length: %d\r\n\r\n" % len(PING_BODY) + PING_BODY,
    "glued": b"}}]garbage without a newline",
    "binary": b"\xff\xfe\x00\x01\x02\r\n",
    "long line": b"x" * (3 * wire.MAX_LINE) + b"\r\n",
    "headers only": b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_a_mis_framed_message_does_not_end_the_stream(case: str) -> None:
    good = {"jsonrpc": "2.0", "id": 1, "method": "textDocument/completion"}
    bodies, _, reader = _read(FRAMING[case] + _frame(good) + _frame(good))
    assert bodies.count(good) == 2, bodies  # the very next message, and the one after, arrive
    assert reader.largest_read <= wire.MAX_CONTENT_LENGTH


def test_an_oversized_length_is_refused_not_allocated() -> None:
    _, problems, reader = _read(b"Content-Length: 1000000000000\r\n\r\n")
    assert reader.largest_read == 0
    assert problems and "over the limit" in problems[0]


def test_the_stream_ending_inside_a_body_ends_reading() -> None:
    bodies, _, _ = _read(b"Content-Length: 100\r\n\r\n{\"partial\"")
    assert bodies == []


# --------------------------------------------------------------------------- envelope
@pytest.mark.parametrize(
    ("body", "code", "reply_id"),
    [
        (b"{not json", wire.PARSE_ERROR, None),
        (b"[" * 100_000, wire.PARSE_ERROR, None),  # nesting deeper than the parser goes
        (b"[]", wire.INVALID_REQUEST, None),
        (json.dumps([PING, PING]).encode(), wire.INVALID_REQUEST, None),
        (b"42", wire.INVALID_REQUEST, None),
        (b"null", wire.INVALID_REQUEST, None),
        (json.dumps({**PING, "jsonrpc": "1.0"}).encode(), wire.INVALID_REQUEST, 7),
        (json.dumps({"id": 7, "method": "ping"}).encode(), wire.INVALID_REQUEST, 7),
        (json.dumps({**PING, "jsonrpc": 2}).encode(), wire.INVALID_REQUEST, 7),
        (json.dumps({**PING, "method": 42}).encode(), wire.INVALID_REQUEST, 7),
        (json.dumps({**PING, "id": {"a": 1}}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({**PING, "id": [1]}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({**PING, "id": True}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({**PING, "id": 1.5}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({**PING, "params": "text"}).encode(), wire.INVALID_REQUEST, 7),
        (json.dumps({"jsonrpc": "2.0", "method": 5}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({"jsonrpc": "2.0"}).encode(), wire.INVALID_REQUEST, None),
        (json.dumps({"jsonrpc": "2.0", "id": 3}).encode(), wire.INVALID_REQUEST, 3),
    ],
)
def test_envelope_errors_are_answered_per_json_rpc(body: bytes, code: int, reply_id: Any) -> None:
    envelope = wire.decode(body)
    assert envelope.error is not None and envelope.error[0] == code, envelope
    assert envelope.reply_id == reply_id


def test_sound_messages_pass() -> None:
    assert wire.decode(PING_BODY).kind == "request" and wire.decode(PING_BODY).error is None
    note = wire.decode(json.dumps({"jsonrpc": "2.0", "method": "initialized", "params": {}}).encode())
    assert note.kind == "notification" and note.error is None
    reply = wire.decode(json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}}).encode())
    assert reply.kind == "response" and reply.error is None
    assert wire.decode(json.dumps({**PING, "id": "abc", "params": [1]}).encode()).error is None
