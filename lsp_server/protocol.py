"""pygls' protocol, hardened against malformed requests.

pygls turns a request whose params do not match the LSP types into an exception inside the
JSON reader loop: it is logged, but the request is never answered, so the editor waits
forever for that id. Here such a request is answered with ``InvalidParams`` naming the
method, and the server carries on with the next message.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

__all__ = ["CodemlmProtocol", "MalformedRequest"]

logger = logging.getLogger(__name__)


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
