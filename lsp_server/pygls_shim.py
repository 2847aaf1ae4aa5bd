"""Everything that reaches into pygls' private parts, in one place.

pygls (2.x) is used through its public API everywhere else. What it does not offer, or does
wrongly for this server, is patched here, and :data:`PYGLS_PRIVATES` lists every private name
used, so :func:`check_pygls` (run at server start and by the test suite) fails loudly when a
pygls release moves one:

- Messages come in through :mod:`lsp_server.wire` (capped framing, JSON-RPC envelope
  checks), not pygls' reader, and the LSP lifecycle is enforced before dispatch: a request
  before ``initialize`` gets ``ServerNotInitialized``, a second ``initialize`` and any
  request after ``shutdown`` get ``InvalidRequest`` (pygls would drop them: the client
  waits forever), notifications out of turn are dropped.
- A request whose params do not match the LSP types is answered ``InvalidParams`` naming the
  method (pygls logs it and never answers).
- The document's version *at arrival* is recorded (``ARRIVAL_VERSION``, a context variable the
  handler's task inherits): an ``async`` handler starts on a later turn of the event loop,
  when a ``didChange`` read after the request may already be applied, so handlers treat a
  different version as a stale request.
- ``shutdown`` with requests in flight: pygls cancels them while iterating over its table of
  futures, and a cancelled future's callback removes itself from that table ("dictionary
  changed size during iteration", answered -32603). Here the table is copied first.
- pygls splits a buffer into lines with ``str.splitlines`` (form feeds and other separators
  break lines); :class:`LspLinesWorkspace` makes its documents count lines the LSP way.
- ``exit`` ends what the server's own exit handler decides (the process, or one TCP
  connection); pygls would ``sys.exit`` from inside the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, BinaryIO

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.workspace import TextDocument, Workspace

from lsp_server import wire

__all__ = [
    "ARRIVAL_VERSION",
    "PYGLS_PRIVATES",
    "CodemlmProtocol",
    "LspLinesWorkspace",
    "MalformedRequest",
    "check_pygls",
    "replace_workspace",
    "serve_stdio",
    "serve_tcp",
]

logger = logging.getLogger(__name__)

# Version of the request's text document when the request was read (None: not open, or the
# request names no document).
ARRIVAL_VERSION: ContextVar[int | None] = ContextVar("codemlm_arrival_version", default=None)

# (class, attribute) pairs this module relies on; instance attributes are checked on an instance.
PYGLS_PRIVATES: tuple[tuple[str, str], ...] = (
    ("LanguageServerProtocol", "_workspace"),
    ("LanguageServerProtocol", "_request_futures"),
    ("LanguageServerProtocol", "_shutdown"),
    ("LanguageServerProtocol", "_send_response"),
    ("LanguageServerProtocol", "_handle_request"),
    ("LanguageServerProtocol", "_server"),
    ("LanguageServer", "_text_document_sync_kind"),
    ("LanguageServer", "_stop_event"),
    ("Workspace", "_create_text_document"),
    ("Workspace", "_sync_kind"),
    ("Workspace", "_position_codec"),
)
_PUBLIC_HOOKS = ("structure_message", "handle_message", "lsp_shutdown", "lsp_exit", "msg_id", "fm", "set_writer")


@attrs.define
class MalformedRequest:
    """A request that could not be read as its LSP type; answered with an error."""

    id: Any
    method: str
    reason: str
    jsonrpc: str = "2.0"


class CodemlmProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = "new"  # then "initialized", then "shut down"

    # ------------------------------------------------------------------ the way in
    def handle_body(self, body: bytes) -> bool:
        """One framed body from the wire. Returns False when it was not JSON."""
        envelope = wire.decode(body)
        if envelope.error is not None:
            code, message = envelope.error
            logger.warning("%s: %r", message, body[:200])
            self._send_error(envelope.reply_id, code, message)
            return code != wire.PARSE_ERROR
        if not self._in_turn(envelope):
            return True
        try:
            message = self.structure_message(envelope.data)
            if envelope.kind == "request" and envelope.method == types.INITIALIZE and not isinstance(
                message, MalformedRequest
            ):
                self.session = "initialized"
            elif envelope.kind == "request" and envelope.method == types.SHUTDOWN:
                self.session = "shut down"
            self.handle_message(message)
        except Exception as exc:  # a message pygls cannot take: the next one still can
            logger.exception("could not handle %r", body[:200])
            self._server._report_server_error(exc, JsonRpcException)
        return True

    def _in_turn(self, envelope: wire.Envelope) -> bool:
        """LSP's lifecycle: answer or drop what arrives out of turn."""
        method = envelope.method
        if envelope.kind == "request":
            msg_id = envelope.data["id"]
            if self.session == "new" and method != types.INITIALIZE:
                self._send_error(msg_id, types.ErrorCodes.ServerNotInitialized, f"{method}: the server is not initialized yet")
            elif self.session != "new" and method == types.INITIALIZE:
                self._send_error(msg_id, types.ErrorCodes.InvalidRequest, "initialize may only be sent once")
            elif self.session == "shut down":
                self._send_error(msg_id, types.ErrorCodes.InvalidRequest, f"{method}: the server is shutting down")
            else:
                return True
            return False
        if envelope.kind == "notification" and method != types.EXIT and self.session != "initialized":
            logger.warning("dropped %s: the server is %s", method, "not initialized" if self.session == "new" else "shutting down")
            return False
        return True

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_response(msg_id, None, types.ResponseError(code=int(code), message=message))

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data.get("id"), (int, str)) and isinstance(data.get("method"), str):
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                return MalformedRequest(id=data["id"], method=data["method"], reason=_describe(cause))
            raise  # a malformed notification or response: logged, nothing to answer

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

    # ------------------------------------------------------------------ lifecycle fixes
    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        # A copy: cancelling a thread future runs its callback now, which edits the table.
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        return None


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


# ---------------------------------------------------------------------- the workspace
# One line with its terminator, or a last line without one.
_LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class _LspLinesDocument(TextDocument):
    """pygls splits a buffer with ``str.splitlines``, which also breaks lines at form feeds,
    vertical tabs, ``\\x1c``-``\\x1e``, NEL and U+2028/2029. Editors count lines by ``\\n``,
    ``\\r\\n`` and ``\\r`` only (LSP), so after a form feed (common in C and old Python files)
    every incremental edit landed on the wrong line. Lines here follow LSP."""

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(_LINE_WITH_END.findall(self.source))


class LspLinesWorkspace(Workspace):
    """pygls' workspace whose documents count lines the LSP way."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return _LspLinesDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


def replace_workspace(server: LanguageServer, workspace_cls: type[Workspace], folders: list[types.WorkspaceFolder]) -> None:
    """Swap pygls' freshly built workspace (no documents yet) for one of ``workspace_cls``."""
    protocol = server.protocol
    assert isinstance(protocol, LanguageServerProtocol)
    current = protocol.workspace
    protocol._workspace = workspace_cls(
        current.root_uri, server._text_document_sync_kind, folders, current.position_encoding
    )


# ---------------------------------------------------------------------- transports
class _BlockingLines:
    """``wire.LineReader`` over a blocking binary stream (stdin), read on its own thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codemlm-stdin")

    async def readline(self) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._stream.readline, wire.MAX_LINE)

    async def read(self, n: int) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._stream.read, n)


class _StreamLines:
    """``wire.LineReader`` over an asyncio stream (a TCP connection)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readline(self) -> bytes:
        try:
            return await self._reader.readline()
        except ValueError:  # a line over the stream's limit, already dropped by asyncio
            return b"\x00"

    async def read(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            return exc.partial


def _serve(server: LanguageServer, reader: wire.LineReader) -> Any:
    protocol = server.protocol
    assert isinstance(protocol, CodemlmProtocol)

    def problem(message: str) -> None:
        logger.warning("framing: %s", message)

    return wire.read_frames(reader, protocol.handle_body, problem)


def serve_stdio(server: LanguageServer, stdin: BinaryIO, stdout: BinaryIO, on_end: Callable[[], None]) -> None:
    """Serve one client over stdin/stdout until the input ends; then ``on_end()``."""
    server._stop_event = threading.Event()  # pygls' shutdown() sets it
    server.protocol.set_writer(StdoutWriter(stdout))
    try:
        asyncio.run(_serve(server, _BlockingLines(stdin)))
    except BrokenPipeError:
        logger.error("the client closed the connection")
    except KeyboardInterrupt:
        pass
    finally:
        on_end()
        server.shutdown()


def serve_tcp(
    make_server: Callable[[asyncio.StreamWriter], tuple[LanguageServer, Callable[[], None]]], host: str, port: int
) -> None:
    """Serve on ``host:port`` until killed: each connection gets a fresh server of its own
    (``make_server`` returns it and what ends its session), and a client that disconnects or
    sends ``exit`` ends only its own session."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        logger.info("client %s connected", peer)
        server, end_session = make_server(writer)
        server.protocol.set_writer(writer)  # StreamWriter has the write/close pygls needs
        try:
            await _serve(server, _StreamLines(reader))
        except (ConnectionError, OSError) as exc:
            logger.warning("client %s: %s", peer, exc)
        finally:
            logger.info("client %s disconnected", peer)
            end_session()
            writer.close()

    async def main() -> None:
        listener = await asyncio.start_server(connection, host, port, limit=wire.MAX_LINE)
        logger.info("serving on %s", ", ".join(str(sock.getsockname()) for sock in listener.sockets))
        async with listener:
            await listener.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# ---------------------------------------------------------------------- the guard
def check_pygls() -> None:
    """Raise RuntimeError naming each private pygls attribute this module relies on that the
    installed pygls no longer has."""
    from pygls.lsp.server import LanguageServer as PyglsServer

    server = PyglsServer("probe", "0")
    instances: dict[str, object] = {
        "LanguageServerProtocol": server.protocol,
        "LanguageServer": server,
        "Workspace": Workspace(None),
    }
    missing = [f"{owner}.{name}" for owner, name in PYGLS_PRIVATES if not hasattr(instances[owner], name)]
    missing += [f"LanguageServerProtocol.{name}" for name in _PUBLIC_HOOKS if not hasattr(server.protocol, name)]
    if not isinstance(getattr(server.protocol, "_request_futures", None), dict):
        missing.append("LanguageServerProtocol._request_futures (no longer a dict)")
    if missing:
        raise RuntimeError(
            "the installed pygls changed under lsp_server/pygls_shim.py: " + ", ".join(missing)
        )
