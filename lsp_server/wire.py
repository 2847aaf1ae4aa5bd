"""The wire: LSP base-protocol framing and the JSON-RPC envelope, checked before pygls sees it.

pygls' own reader trusts the stream: a header line that is not exactly
``Content-Length: N\\r\\n`` is dropped, a body without a trailing newline swallows the next
header, and from then on every message is lost (one mis-framed message ends the session);
``Content-Length: 1000000000000`` is read as asked. This reader caps the length, finds a
``Content-Length`` header even when garbage precedes it on the line, and when a body turns
out not to be JSON but holds the start of the next message, reads that message again. Lines
are read in bounded pieces, so no input makes it hold more than one capped body in memory.

Envelope rules are JSON-RPC 2.0's, as LSP narrows them: ``jsonrpc`` is ``"2.0"``, a method
is a string, an id is an integer or a string, params are an object or an array, and there
are no batches. A message that breaks them is answered ``InvalidRequest`` (with its id when
the id itself is sound, else ``null``), as JSON-RPC asks even of a broken notification; a
body that is not JSON is answered ``ParseError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "INVALID_REQUEST",
    "MAX_CONTENT_LENGTH",
    "PARSE_ERROR",
    "Envelope",
    "LineReader",
    "decode",
    "read_frames",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600

# A didOpen of a 50,000-line file is ~2 MB; nothing an editor sends comes near this.
MAX_CONTENT_LENGTH = 64 * 1024 * 1024
# Longer header lines are read (and dropped) in pieces of this size.
MAX_LINE = 64 * 1024

_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


class LineReader(Protocol):
    """A byte stream: ``readline`` returns one line, or a piece of at most MAX_LINE bytes of a
    longer one, or ``b""`` at the end; ``read(n)`` returns n bytes, fewer only at the end."""

    def readline(self) -> Awaitable[bytes]: ...

    def read(self, n: int) -> Awaitable[bytes]: ...


class _Pushback:
    """A reader with bytes put back in front (the next message found inside a broken body)."""

    def __init__(self, reader: LineReader) -> None:
        self._reader = reader
        self._front = b""

    def put_back(self, data: bytes) -> None:
        self._front = data + self._front

    async def readline(self) -> bytes:
        if self._front:
            end = self._front.find(b"\n", 0, MAX_LINE)
            cut = end + 1 if end >= 0 else min(len(self._front), MAX_LINE)
            if end >= 0 or len(self._front) >= MAX_LINE:
                line, self._front = self._front[:cut], self._front[cut:]
                return line
            line, self._front = self._front, b""
            return line + await self._reader.readline()
        return await self._reader.readline()

    async def read(self, n: int) -> bytes:
        head, self._front = self._front[:n], self._front[n:]
        if len(head) == n:
            return head
        return head + await self._reader.read(n - len(head))


async def read_frames(
    reader: LineReader,
    on_body: Callable[[bytes], bool],
    on_problem: Callable[[str], None],
    *,
    max_length: int = MAX_CONTENT_LENGTH,
) -> None:
    """Read framed bodies until the stream ends, handing each to ``on_body`` (which returns
    False when the body was not JSON). Framing problems go to ``on_problem``; reading goes on."""
    stream = _Pushback(reader)
    length: int | None = None
    while True:
        line = await stream.readline()
        if not line:
            return
        if not line.strip():  # the blank line that ends the headers
            if length is None:
                continue
            body = await stream.read(length)
            if len(body) < length:
                return  # the stream ended inside a body
            length = None
            if not on_body(body):
                # A Content-Length that was too long swallowed the start of the next message:
                # take the message it did frame, and read the rest again as the next one.
                end = _end_of_first_value(body)
                if end is not None:
                    on_body(body[:end])
                    stream.put_back(body[end:])
                else:
                    start = _header_start(body)
                    if start is not None:
                        stream.put_back(body[start:])
            continue
        matches = list(_CONTENT_LENGTH.finditer(line))
        if not matches:
            continue  # another header (Content-Type), or garbage between messages
        value = matches[-1].group(1).strip()  # garbage may precede the header on its line
        if not value.isdigit():
            on_problem(f"Content-Length {value[:40]!r} is not a number")
            length = None
        elif len(value) > 12 or int(value) > max_length:
            on_problem(f"Content-Length {value[:40].decode()} is over the limit of {max_length} bytes")
            length = None  # its body, if any follows, is skipped as garbage until the next header
        else:
            length = int(value)


def _end_of_first_value(body: bytes) -> int | None:
    """Where the JSON value at the start of ``body`` ends, if something else follows it."""
    text = body.decode("utf-8", errors="surrogateescape")
    try:
        _, end = json.JSONDecoder().raw_decode(text.lstrip())
    except (ValueError, RecursionError):
        return None
    end += len(text) - len(text.lstrip())
    if not text[end:].strip():
        return None
    return len(text[:end].encode("utf-8", errors="surrogateescape"))


def _header_start(body: bytes) -> int | None:
    start = body.lower().find(b"content-length")
    return start if start > 0 else None


@dataclass(frozen=True)
class Envelope:
    """A JSON-RPC message that passed the envelope rules (``error`` None), or the answer it
    gets (``error``: code and message, ``reply_id``: the id to answer with, None for null)."""

    data: Any
    kind: str  # "request", "notification", "response" or "invalid"
    error: tuple[int, str] | None = None
    reply_id: int | str | None = None

    @property
    def method(self) -> str | None:
        method = self.data.get("method") if isinstance(self.data, dict) else None
        return method if isinstance(method, str) else None


def _sound_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def decode(body: bytes) -> Envelope:
    """Check one body against the envelope rules."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return Envelope(None, "invalid", (PARSE_ERROR, f"parse error: {str(exc)[:200]}"))
    if isinstance(data, list):
        return Envelope(data, "invalid", (INVALID_REQUEST, "batches are not part of LSP; send one message at a time"))
    if not isinstance(data, dict):
        return Envelope(data, "invalid", (INVALID_REQUEST, f"a message must be a JSON object, got {type(data).__name__}"))
    has_id, has_method = "id" in data, "method" in data
    msg_id = data.get("id")
    reply_id = msg_id if _sound_id(msg_id) else None
    kind = "request" if has_id and has_method else "notification" if has_method else "response"

    def invalid(reason: str) -> Envelope:
        return Envelope(data, kind, (INVALID_REQUEST, f"invalid request: {reason}"), reply_id)

    if data.get("jsonrpc") != "2.0":
        return invalid(f"jsonrpc must be \"2.0\", got {data.get('jsonrpc')!r}"[:200])
    # A response may carry a null id (the answer to a parse error); a request may not.
    if has_id and not _sound_id(msg_id) and not (kind == "response" and msg_id is None):
        return invalid(f"id must be an integer or a string, got {type(msg_id).__name__}")
    if has_method and not isinstance(data["method"], str):
        return invalid(f"method must be a string, got {type(data['method']).__name__}")
    if kind == "response" and "result" not in data and "error" not in data:
        return invalid("a message needs a method (request, notification) or a result or error (response)")
    if "params" in data and data["params"] is not None and not isinstance(data["params"], (dict, list)):
        return invalid(f"params must be an object or an array, got {type(data['params']).__name__}")
    return Envelope(data, kind)
