"""Start the real server (``python -m lsp_server``) over stdio and drive it with pytest-lsp.

Every server gets its own copy of a workspace and its own ``CODEMLM_CACHE_DIR`` so the
index it builds lives in the test's tmp directory, never in the user's cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests._tiny_model import SNIPPET

__all__ = [
    "CALC_PY",
    "FIXTURE_REPO",
    "RawServer",
    "StatusLog",
    "make_workspace",
    "open_document",
    "raw_request",
    "running_server",
    "send_now",
    "wait_until",
]

FIXTURE_REPO = Path(__file__).resolve().parents[1] / "fixtures" / "multilang_repo"

# The file the tiny test model has learned by heart; a hole after `return ` in sub() is `a - b`.
CALC_PY = SNIPPET


def make_workspace(tmp_path: Path) -> Path:
    """The fixture repository copied to tmp, plus ``calc.py``."""
    root = tmp_path / "workspace"
    shutil.copytree(FIXTURE_REPO, root, symlinks=True)
    (root / "calc.py").write_text(CALC_PY, encoding="utf-8")
    return root


class StatusLog:
    """Every ``codemlm/status`` notification the client received, in order."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def record(self, params: Any) -> None:
        # pygls hands custom notifications' params over as a namedtuple (pygls.protocol.Object).
        value = params if isinstance(params, dict) else dict(params._asdict())
        self.states.append(value)
        self._changed.set()

    async def wait_for(self, state: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first status with ``state`` received after the last one we waited for."""

        async def poll() -> dict[str, Any]:
            while True:
                for value in self.states:
                    if value.get("state") == state:
                        return value
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(poll(), timeout)


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(interval)

    await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def running_server(
    workspace: Path | None,
    cache_dir: Path,
    *,
    initialization_options: Any = None,
    client: str = "visual-studio-code",
    configuration: dict[str, Any] | None = None,
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[tuple[LanguageClient, StatusLog]]:
    """An initialized session; shut down cleanly on exit."""
    env = dict(os.environ)
    env.pop("CODEMLM_MODEL", None)  # never a model from the developer's environment
    env.update(
        CODEMLM_CACHE_DIR=str(cache_dir),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",  # two shared cores: one thread per server keeps tests fair
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "lsp_server", "--log-level", "DEBUG", *extra_args],
        server_env=env,
    )
    lsp_client: LanguageClient = await config.start()  # type: ignore[assignment]
    status = StatusLog()
    registrations: list[types.Registration] = []

    def register_capability(params: types.RegistrationParams) -> None:
        registrations.extend(params.registrations)

    applied_edits: list[types.ApplyWorkspaceEditParams] = []

    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied_edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    # pytest-lsp's client answers neither of these itself; record what the server asks.
    lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)(register_capability)
    lsp_client.feature(types.WORKSPACE_APPLY_EDIT)(apply_edit)
    lsp_client.registrations = registrations  # type: ignore[attr-defined]
    lsp_client.applied_edits = applied_edits  # type: ignore[attr-defined]
    lsp_client.feature("codemlm/status")(lambda params: status.record(params))
    if configuration is not None:
        for section, value in configuration.items():
            lsp_client.set_configuration(value, section=section)
    try:
        await lsp_client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(client),
                root_uri=workspace.as_uri() if workspace is not None else None,
                workspace_folders=(
                    [types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)] if workspace else None
                ),
                initialization_options=initialization_options,
            )
        )
        yield lsp_client, status
        await lsp_client.shutdown_session()
    finally:
        await lsp_client.stop()


def open_document(client: LanguageClient, path: Path, text: str | None = None, language_id: str = "python") -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id=language_id,
                version=1,
                text=path.read_text(encoding="utf-8") if text is None else text,
            )
        )
    )
    return uri


def send_now(client: LanguageClient, method: str, params: Any, msg_id: str | None = None) -> asyncio.Future[Any]:
    """Write a request to the server *now* (``*_async`` helpers only write when awaited),
    so the order on the wire is the order of the calls."""
    return asyncio.wrap_future(client.protocol.send_request(method, params, msg_id=msg_id))


async def raw_request(client: LanguageClient, method: str, params: Any) -> Any:
    """A request whose result comes back as plain JSON, not structured by the client.

    lsprotocol's client-side converter reads a ``(Command | CodeAction)[]`` result as
    ``Command`` objects, losing the code actions; the raw JSON shows what the server sent.
    """
    msg_id = f"raw-{uuid.uuid4()}"
    future = client.protocol.send_request(method, params, msg_id=msg_id)
    client.protocol._result_types.pop(msg_id, None)  # no result type: keep the JSON as it is
    return await asyncio.wrap_future(future)


class RawServer:
    """The server over stdio driven byte by byte, for what a well-behaved client never sends
    (broken JSON, wrong types). A reader thread queues every message the server writes."""

    def __init__(self, cache_dir: Path, *extra_args: str) -> None:
        env = dict(os.environ)
        env.pop("CODEMLM_MODEL", None)
        env.update(CODEMLM_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS="1",
                   PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []  # server->client messages seen while waiting

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            length = None
            while True:
                line = stdout.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:
                continue
            self.messages.put(json.loads(stdout.read(length)))

    def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given: no framing added."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(data)
        stdin.flush()

    def send_body(self, body: bytes) -> None:
        self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message: dict[str, Any]) -> None:
        self.send_body(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8"))

    def request(self, method: str, params: Any, timeout: float = 60.0) -> dict[str, Any]:
        """Send a request and return its response (error or result), skipping notifications."""
        return self.response(self.send_request(method, params), timeout)

    def send_request(self, method: str, params: Any) -> int:
        """Send a request without waiting; its id."""
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        return self._next_id

    def response(self, request_id: int | str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == request_id and "method" not in message:
                return message
            self.notifications.append(message)

    def wait_for_notification(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """The first notification ``method`` whose params contain ``params``."""

        def matches(message: dict[str, Any]) -> bool:
            values = message.get("params") or {}
            return message.get("method") == method and all(values.get(k) == v for k, v in params.items())

        for message in self.notifications:
            if matches(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            self.notifications.append(message)
            if matches(message):
                return message

    def close(self) -> int:
        try:
            self.request("shutdown", None, timeout=30)
            self.send({"method": "exit"})
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
