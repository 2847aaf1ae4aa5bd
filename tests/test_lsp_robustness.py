"""The server without a model, with bad settings, bad messages and other transports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp.harness import CALC_PY, RawServer, StatusLog, make_workspace, open_document, running_server

HOLE = types.Position(line=5, character=11)


# --------------------------------------------------------------------------- no model
@pytest_asyncio.fixture
async def no_model(tmp_path: Path) -> AsyncIterator[tuple[LanguageClient, StatusLog, Path]]:
    workspace = make_workspace(tmp_path)
    options = {
        "modelDir": str(tmp_path / "no-such-model"),
        "maxCandidates": "lots",  # invalid: warned about, default used
        "languages": ["python", "klingon"],
    }
    async with running_server(
        workspace, tmp_path / "cache", initialization_options=options, client="neovim"
    ) as (client, status):
        await status.wait_for("no-model", timeout=60)
        yield client, status, workspace


async def test_without_a_model_search_is_lexical_and_completion_is_empty(
    no_model: tuple[LanguageClient, StatusLog, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, status, workspace = no_model
    final = status.states[-1]
    assert final["state"] == "no-model"
    assert "lexical search ready" in final["message"] and "no-such-model" in final["message"]

    uri = open_document(client, workspace / "calc.py", CALC_PY.replace("return a - b", "return "))
    for _ in range(2):
        completion = await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=HOLE)
        )
        assert isinstance(completion, types.CompletionList) and not completion.items
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=HOLE,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(inline, types.InlineCompletionList) and not inline.items
    selection = {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 16}}
    filled = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codemlm.fillSelection", arguments=[{"uri": uri, "range": selection}])
    )
    assert filled == []

    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="mul"))
    assert symbols and symbols[0].name == "mul"  # lexical BM25 ranks the exact name first
    assert symbols[0].location.uri == (workspace / "calc.py").as_uri()
    # The languages setting keeps results to Python: the C function rb_push is filtered out.
    results = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codemlm.search", arguments=[{"query": "rb_push area", "k": 10}])
    )
    assert results and all(r["path"].endswith(".py") for r in results)

    # Said once: one warning about the model however many requests ran, one about settings.
    model_warnings = [m for m in client.messages if "no-such-model" in m.message]
    assert len(model_warnings) == 1 and model_warnings[0].type == types.MessageType.Warning
    assert "Completion is off" in model_warnings[0].message
    # The server wrote the CLI's index: `codemlm search` in this workspace reads the same file.
    from codemlm.index import RepoIndex, default_index_path
    from codemlm.search import search

    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    assert default_index_path(workspace).is_file()
    with RepoIndex.open(workspace) as index:
        assert index.rebuilt_reason is None
        assert [r.name for r in search(index, "mul", k=1)] == ["mul"]

    settings_warnings = [m for m in client.messages if "invalid settings" in m.message]
    assert len(settings_warnings) == 1
    assert "maxCandidates" in settings_warnings[0].message and "klingon" in settings_warnings[0].message


async def test_without_a_workspace_folder_the_server_still_answers(tmp_path: Path) -> None:
    async with running_server(
        None, tmp_path / "cache", initialization_options={"modelDir": str(tmp_path / "none")}
    ) as (client, status):
        final = await status.wait_for("no-model", timeout=60)
        assert "no workspace folder" in final["message"]
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="anything")) == []
        results = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codemlm.search", arguments=[{"query": "anything", "k": 3}])
        )
        assert results == []


async def test_an_index_that_cannot_be_opened_turns_search_off_not_the_server(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    options = {"modelDir": str(tmp_path / "none"), "indexPath": str(blocker / "index.sqlite")}
    async with running_server(workspace, tmp_path / "cache", initialization_options=options) as (client, status):
        final = await status.wait_for("no-model", timeout=60)
        assert final["message"].startswith("search is off:") and "index" in final["message"]
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="rb_push")) == []
        reply = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codemlm.search", arguments=[{"query": "rb_push", "k": 3}])
        )
        assert reply == []


# --------------------------------------------------------------------------- bad messages
def test_garbage_then_a_valid_request_is_still_served(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    server = RawServer(tmp_path / "cache")
    try:
        reply = server.request(
            "initialize",
            {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
             "initializationOptions": {"modelDir": str(tmp_path / "none")}},
        )
        assert "capabilities" in reply["result"]
        server.send({"method": "initialized", "params": {}})
        server.wait_for_notification("codemlm/status", state="no-model")  # indexed

        server.send_body(b"{this is not json")
        server.send_body(b"[1, 2, 3]")
        server.send_body(json.dumps({"jsonrpc": "2.0", "id": 99}).encode())  # a response to nothing
        bad_position = server.request(
            "textDocument/completion",
            {"textDocument": {"uri": (workspace / "calc.py").as_uri()}, "position": {"line": -1, "character": "x"}},
        )
        assert bad_position["error"]["code"] == types.ErrorCodes.InvalidParams
        assert "textDocument/completion" in bad_position["error"]["message"]
        malformed: list[Any] = [[1, 2], {}, None]
        for params in malformed:
            wrong_shape = server.request("workspace/symbol", params)
            assert wrong_shape["error"]["code"] == types.ErrorCodes.InvalidParams
        # A query of the wrong type is coerced by the LSP types, and answered.
        assert "result" in server.request("workspace/symbol", {"query": {"nested": True}})
        unknown = server.request("codemlm/doesNotExist", {})
        assert unknown["error"]["code"] == types.ErrorCodes.MethodNotFound
        unknown_command = server.request("workspace/executeCommand", {"command": "codemlm.nope", "arguments": []})
        assert "error" in unknown_command
        # Notifications about documents the server never saw, with nonsense ranges.
        server.send({"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": "file:///nowhere.py", "version": 3},
            "contentChanges": [{"range": {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 4}},
                                "text": "x"}]}})
        server.send({"method": "textDocument/didClose", "params": {"textDocument": {"uri": "file:///nowhere.py"}}})
        server.send({"method": "workspace/didChangeConfiguration", "params": {"settings": "garbage"}})

        symbols = server.request("workspace/symbol", {"query": "rb_push"})
        assert [s["name"] for s in symbols["result"]][:1] == ["rb_push"]
        assert server.process.poll() is None
        # Garbage is logged into the client's log, never popped up at the user as an error.
        shown = [m for m in server.notifications if m.get("method") == "window/showMessage"]
        assert all(m["params"]["type"] != types.MessageType.Error for m in shown), shown
        logged = [m for m in server.notifications if m.get("method") == "window/logMessage"]
        assert any(m["params"]["type"] == types.MessageType.Error for m in logged)
    finally:
        assert server.close() == 0


# --------------------------------------------------------------------------- transports
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of sockets listening on ``port`` (Linux /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


def test_tcp_listens_on_localhost_only(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", "--tcp", "--port", str(port), "--log-file", str(tmp_path / "lsp.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        with connection:
            if Path("/proc/net/tcp").exists():
                assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, nothing else
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
            connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(4096)
            header, _, rest = received.partition(b"\r\n\r\n")
            lengths = [line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")]
            length = int(lengths[0])
            while len(rest) < length:
                rest += connection.recv(4096)
            reply: dict[str, Any] = json.loads(rest[:length])
            assert reply["result"]["serverInfo"]["name"] == "codemlm-lsp"
        assert "workspace root None" in (tmp_path / "lsp.log").read_text()  # --log-file took the log
    finally:
        process.kill()
        process.wait()


def test_version_and_bad_flags() -> None:
    version = subprocess.run([sys.executable, "-m", "lsp_server", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("codemlm-lsp ")
    both = subprocess.run([sys.executable, "-m", "lsp_server", "--tcp", "--stdio"], capture_output=True, text=True)
    assert both.returncode == 2 and "not both" in both.stderr
