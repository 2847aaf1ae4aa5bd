"""The LSP lifecycle under clients that get it wrong, shutdown under load, TCP sessions, and an
index path that names a user's file."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.lsp.harness import RawServer, make_workspace

NOT_INITIALIZED = int(types.ErrorCodes.ServerNotInitialized)
INVALID_REQUEST = int(types.ErrorCodes.InvalidRequest)


def _initialize(server: RawServer, workspace: Path | None, tmp_path: Path, **options: Any) -> dict[str, Any]:
    return server.request(
        "initialize",
        {"processId": None, "rootUri": workspace.as_uri() if workspace else None, "capabilities": {},
         "initializationOptions": {"modelDir": str(tmp_path / "no-model"), **options}},
    )


def _completion(server: RawServer, uri: str) -> dict[str, Any]:
    return server.request(
        "textDocument/completion",
        {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}},
        timeout=30,
    )


def _fill(uri: str) -> dict[str, Any]:
    selection = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}
    return {"command": "codemlm.fillSelection", "arguments": [{"uri": uri, "range": selection, "apply": False}]}


def test_requests_before_initialize_and_a_second_initialize(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    server = RawServer(tmp_path / "cache")
    try:
        early = _completion(server, (workspace / "calc.py").as_uri())
        assert early["error"]["code"] == NOT_INITIALIZED
        assert "result" in _initialize(server, workspace, tmp_path)
        server.send({"method": "initialized", "params": {}})
        unsaved = (workspace / "unsaved.py").as_uri()  # open in the editor, never on disk
        server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": unsaved, "languageId": "python", "version": 1, "text": "def f():\n    return 1\n"}}})
        assert server.request("workspace/executeCommand", _fill(unsaved)) == {"jsonrpc": "2.0", "id": 3, "result": []}

        again = _initialize(server, workspace, tmp_path)
        assert again["error"]["code"] == INVALID_REQUEST and "once" in again["error"]["message"]
        # The buffer is still open: a fill reads it (a closed one would be read from disk, and fail).
        assert server.request("workspace/executeCommand", _fill(unsaved))["result"] == []
    finally:
        assert server.close() == 0


def test_requests_after_shutdown_are_refused_and_exit_ends_cleanly(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    server = RawServer(tmp_path / "cache")
    try:
        _initialize(server, workspace, tmp_path)
        server.send({"method": "initialized", "params": {}})
        assert server.request("shutdown", None)["result"] is None
        late = server.request("workspace/symbol", {"query": "add"}, timeout=10)
        assert late["error"]["code"] == INVALID_REQUEST
        server.send({"method": "exit"})
        assert server.process.wait(timeout=30) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_shutdown_with_requests_in_flight_answers_null(tmp_path: Path) -> None:
    """Editors close with requests pending: pygls answered shutdown -32603 ("dictionary
    changed size during iteration") in 6 of 6 trials."""
    workspace = make_workspace(tmp_path)
    for _ in range(2):  # it failed every time before the fix; two rounds catch a flaky fix
        server = RawServer(tmp_path / "cache")
        try:
            _initialize(server, workspace, tmp_path)
            server.send({"method": "initialized", "params": {}})
            pending = [
                server.send_request("workspace/executeCommand", {"command": "codemlm.reindex", "arguments": [{"wait": True}]}),
                server.send_request("workspace/executeCommand", {"command": "codemlm.search", "arguments": [{"query": "add"}]}),
                server.send_request("workspace/executeCommand", _fill((workspace / "calc.py").as_uri())),
                server.send_request("workspace/symbol", {"query": "add"}),
            ]
            reply = server.request("shutdown", None, timeout=30)
            assert reply.get("result", "missing") is None and "error" not in reply, reply
            for msg_id in pending:  # every one answered, result or error, none left hanging
                answer = server.response(msg_id, timeout=30) if not _seen(server, msg_id) else {}
                assert answer is not None
            server.send({"method": "exit"})
            assert server.process.wait(timeout=30) == 0
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def _seen(server: RawServer, msg_id: int) -> bool:
    return any(m.get("id") == msg_id and "method" not in m for m in server.notifications)


def test_a_user_file_given_as_index_path_is_left_byte_identical(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    victim = workspace / "ok.py"
    victim.write_text("def precious():\n    return 'do not overwrite me'\n", encoding="utf-8")
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    server = RawServer(tmp_path / "cache")
    try:
        _initialize(server, workspace, tmp_path, indexPath=str(victim))
        server.send({"method": "initialized", "params": {}})
        status = server.wait_for_notification("codemlm/status", state="no-model")
        assert "search is off" in status["params"]["message"] and "ok.py" in status["params"]["message"]
        assert "result" in _completion(server, (workspace / "calc.py").as_uri())  # reads what came before
        warnings = [m["params"]["message"] for m in server.notifications if m.get("method") == "window/showMessage"
                    and m["params"]["type"] == types.MessageType.Warning and "search is off" in m["params"]["message"]]
        assert len(warnings) == 1 and "ok.py" in warnings[0], warnings
        # Asking again (a reindex reopens nothing it must not) still refuses and keeps serving.
        again = server.request("workspace/executeCommand", {"command": "codemlm.reindex", "arguments": [{"wait": True}]})
        assert again["result"]["indexed"] is False
        assert "result" in _completion(server, (workspace / "calc.py").as_uri())
        assert server.request("workspace/symbol", {"query": "precious"})["result"] == []
    finally:
        assert server.close() == 0
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before


# --------------------------------------------------------------------------- TCP
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _connect(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.2)


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _reply(connection: socket.socket, msg_id: int) -> dict[str, Any]:
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            chunk = connection.recv(65536)
            assert chunk, "the server closed the connection"
            buffered += chunk
        header, _, buffered = buffered.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(buffered) < length:
            buffered += connection.recv(65536)
        message: dict[str, Any] = json.loads(buffered[:length])
        buffered = buffered[length:]
        if message.get("id") == msg_id and "method" not in message:
            return message


def test_tcp_keeps_serving_after_a_client_leaves(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", "--tcp", "--port", str(port), "--log-file", str(tmp_path / "lsp.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    initialize = {"id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": None, "capabilities": {},
        "initializationOptions": {"modelDir": str(tmp_path / "no-model")}}}
    try:
        # First client: initializes, then just disconnects.
        with _connect(port, process) as first:
            _send(first, initialize)
            assert _reply(first, 1)["result"]["serverInfo"]["name"] == "codemlm-lsp"
        # Second client: a session of its own (its initialize is not "a second one"), and a
        # clean shutdown + exit that ends only this session.
        with _connect(port, process) as second:
            _send(second, initialize)
            assert "result" in _reply(second, 1)
            _send(second, {"method": "initialized", "params": {}})
            _send(second, {"id": 2, "method": "workspace/symbol", "params": {"query": "x"}})
            assert _reply(second, 2)["result"] == []
            _send(second, {"id": 3, "method": "shutdown"})
            assert _reply(second, 3)["result"] is None
            _send(second, {"method": "exit"})
        time.sleep(0.5)
        assert process.poll() is None, "the server exited with its client"
        with _connect(port, process, timeout=10) as third:
            _send(third, initialize)
            assert "result" in _reply(third, 1)
    finally:
        process.kill()
        process.wait()
