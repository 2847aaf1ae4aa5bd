"""pygls' protocol, hardened against malformed requests and racing edits.

pygls turns a request whose params do not match the LSP types into an exception inside the
JSON reader loop: it is logged, but the request is never answered, so the editor waits
forever for that id. Here such a request is answered with ``InvalidParams`` naming the
method, and the server carries on with the next message.

An ``async`` handler starts on a later turn of the event loop than the one that read its
request, and by then a ``didChange`` read just after the request may already have been
applied: the handler would read a position against text the client never saw. So the
document's version *at arrival* is recorded (``ARRIVAL_VERSION``, a context variable that
the handler's task inherits) and handlers treat a different version as a stale request.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import attrs
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

__all__ = ["ARRIVAL_VERSION", "CodemlmProtocol", "MalformedRequest"]

logger = logging.getLogger(__name__)

# Version of the request's text document when the request was read (None: not open, or the
# request names no document).
ARRIVAL_VERSION: ContextVar[int | None] = ContextVar("codemlm_arrival_version", default=None)


@attrs.define
class MalformedRequest:
    """A request that could not be read as its LSP type; answered with an error."""

    id: Any
    method: str
    reason: str
    jsonrpc: str = "2.0"


class CodemlmProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            # Only top-level messages carry "jsonrpc"; nested objects pass through above.
            if isinstance(data.get("id"), (int, str)) and isinstance(data.get("method"), str):
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                return MalformedRequest(id=data["id"], method=data["method"], reason=_describe(cause))
            raise  # a malformed notification or response: logged by pygls, nothing to answer

    def handle_message(self, message: Any) -> None:
        if isinstance(message, MalformedRequest):
            logger.warning("invalid params for %s (id %r): %s", message.method, message.id, message.reason)
            error = JsonRpcInvalidParams(f"invalid params for {message.method}: {message.reason}")
            self._send_response(message.id, None, error.to_response_error())
            return
        super().handle_message(message)

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        # Runs inside the per-message context pygls creates, which the handler task copies.
        document = getattr(params, "text_document", None)
        uri = getattr(document, "uri", None)
        version = None
        if isinstance(uri, str) and self._workspace is not None:
            open_document = self._workspace.text_documents.get(uri)
            version = open_document.version if open_document is not None else None
        ARRIVAL_VERSION.set(version)
        super()._handle_request(msg_id, method_name, params)


def _describe(exc: BaseException) -> str:
    """One line from a cattrs validation error (which nests the real causes)."""
    leaves: list[str] = []

    def walk(error: BaseException) -> None:
        nested = getattr(error, "exceptions", None)
        if nested:
            for inner in nested:
                walk(inner)
        else:
            notes = getattr(error, "__notes__", None) or []
            where = f" ({notes[0]})" if notes else ""
            leaves.append(f"{type(error).__name__}: {error}{where}")

    walk(exc)
    text = "; ".join(leaves[:3]) or str(exc)
    return text[:500]
