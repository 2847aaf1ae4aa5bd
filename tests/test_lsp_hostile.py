"""Hostile input over stdio against the real server: after every case the server must still
answer a normal completion (and answer the case itself as JSON-RPC and LSP say).

One server (no model: completion answers at once, empty) takes every case in turn, so the
whole run takes seconds. Counts are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.lsp.harness import RawServer, make_workspace
from tests.test_lsp_wire import FRAMING

PARSE_ERROR, INVALID_REQUEST = -32700, -32600
INVALID_PARAMS, METHOD_NOT_FOUND = int(types.ErrorCodes.InvalidParams), int(types.ErrorCodes.MethodNotFound)


class Session:
    def __init__(self, server: RawServer, workspace: Path, outside: Path) -> None:
        self.server = server
        self.workspace = workspace
        self.outside = outside
        self.calc_uri = (workspace / "calc.py").as_uri()

    def completion_answers(self) -> None:
        reply = self.server.request(
            "textDocument/completion",
            {"textDocument": {"uri": self.calc_uri}, "position": {"line": 5, "character": 11}},
            timeout=30,
        )
        assert "result" in reply and isinstance(reply["result"], dict), reply
        assert self.server.process.poll() is None

    def fill(self, uri: str) -> dict[str, Any]:
        selection = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}
        return {"command": "codemlm.fillSelection", "arguments": [{"uri": uri, "range": selection, "apply": False}]}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    base = tmp_path_factory.mktemp("hostile")
    workspace = make_workspace(base)
    outside = base / "outside.py"
    outside.write_text("password = 'not yours'\n")
    server = RawServer(base / "cache")
    try:
        reply = server.request(
            "initialize",
            {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
             "initializationOptions": {"modelDir": str(base / "no-model")}},
        )
        assert "capabilities" in reply["result"]
        server.send({"method": "initialized", "params": {}})
        server.wait_for_notification("codemlm/status", state="no-model")
        calc = workspace / "calc.py"
        server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": calc.as_uri(), "languageId": "python", "version": 1, "text": calc.read_text()}}})
        # Created after the first index walk: a FIFO must not trap the fill command.
        if hasattr(os, "mkfifo"):
            os.mkfifo(workspace / "pipe.py")
        if Path("/dev/zero").exists():
            (workspace / "zero.py").symlink_to("/dev/zero")
        yield Session(server, workspace, outside)
    finally:
        assert server.close() == 0


def _request(msg_id: str, method: Any, params: Any, **extra: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params, **extra}).encode()


# Each case: what to send (framed unless marked raw), and the answer it must get: (code, id) or None.
Case = tuple[Callable[[Session], bytes], bool, tuple[int, Any] | None]

CASES: dict[str, Case] = {
    # ---- framing: raw bytes on the stream
    **{f"framing: {name}": ((lambda s, data=data: data), True, None) for name, data in FRAMING.items()},
    # ---- JSON
    "json: not json": ((lambda s: b"{this is not json"), False, (PARSE_ERROR, None)),
    "json: truncated": ((lambda s: b'{"jsonrpc": "2.0", "id": 1, "meth'), False, (PARSE_ERROR, None)),
    "json: nested 100k deep": ((lambda s: b"[" * 100_000 + b"]" * 100_000), False, (PARSE_ERROR, None)),
    "json: invalid utf-8": ((lambda s: b'{"jsonrpc": "2.0", "method": "\xff\xfe"}'), False, (PARSE_ERROR, None)),
    "json: empty body": ((lambda s: b""), False, (PARSE_ERROR, None)),
    # ---- envelope
    "envelope: batch": ((lambda s: b"[" + _request("b1", "shutdown", None) + b"]"), False, (INVALID_REQUEST, None)),
    "envelope: empty batch": ((lambda s: b"[]"), False, (INVALID_REQUEST, None)),
    "envelope: a number": ((lambda s: b"3"), False, (INVALID_REQUEST, None)),
    "envelope: jsonrpc 1.0": ((lambda s: _request("e1", "workspace/symbol", {"query": "x"}, jsonrpc="1.0")), False,
                              (INVALID_REQUEST, "e1")),
    "envelope: no jsonrpc": ((lambda s: json.dumps({"id": "e2", "method": "workspace/symbol",
                                                    "params": {"query": "x"}}).encode()), False, (INVALID_REQUEST, "e2")),
    "envelope: numeric method": ((lambda s: _request("e3", 42, {})), False, (INVALID_REQUEST, "e3")),
    "envelope: null method": ((lambda s: _request("e4", None, {})), False, (INVALID_REQUEST, "e4")),
    "envelope: object id": ((lambda s: _request({"a": 1}, "workspace/symbol", {"query": "x"})), False,  # type: ignore[arg-type]
                            (INVALID_REQUEST, None)),
    "envelope: bool id": ((lambda s: _request(True, "workspace/symbol", {"query": "x"})), False,  # type: ignore[arg-type]
                          (INVALID_REQUEST, None)),
    "envelope: string params": ((lambda s: _request("e5", "workspace/symbol", "x")), False, (INVALID_REQUEST, "e5")),
    "envelope: no method no id": ((lambda s: b'{"jsonrpc": "2.0"}'), False, (INVALID_REQUEST, None)),
    "envelope: notification, numeric method": ((lambda s: b'{"jsonrpc": "2.0", "method": 7}'), False,
                                               (INVALID_REQUEST, None)),
    "envelope: second initialize": ((lambda s: _request("e6", "initialize", {"capabilities": {}})), False,
                                    (INVALID_REQUEST, "e6")),
    # ---- params
    "params: completion position of strings": ((lambda s: _request("p1", "textDocument/completion", {
        "textDocument": {"uri": s.calc_uri}, "position": {"line": "x", "character": None}})), False,
        (INVALID_PARAMS, "p1")),
    "params: symbol params a list": ((lambda s: _request("p2", "workspace/symbol", [1, 2])), False,
                                     (INVALID_PARAMS, "p2")),
    "params: unknown method": ((lambda s: _request("p3", "codemlm/nothing", {})), False, (METHOD_NOT_FOUND, "p3")),
    "params: cancel with an object id": ((lambda s: b'{"jsonrpc": "2.0", "method": "$/cancelRequest", '
                                          b'"params": {"id": {"x": 1}}}'), False, None),
    "params: cancel of an unknown id": ((lambda s: b'{"jsonrpc": "2.0", "method": "$/cancelRequest", '
                                         b'"params": {"id": 123456}}'), False, None),
    "params: change to a document never opened": ((lambda s: json.dumps({"jsonrpc": "2.0",
        "method": "textDocument/didChange", "params": {"textDocument": {"uri": "file:///nowhere.py", "version": 2},
        "contentChanges": [{"text": "x"}]}}).encode()), False, None),
    # ---- fill selection on URIs a client must not make the server read
    "fill: /dev/zero": ((lambda s: _request("f1", "workspace/executeCommand", s.fill("file:///dev/zero"))), False,
                        (INVALID_PARAMS, "f1")),
    "fill: /dev/stdin": ((lambda s: _request("f2", "workspace/executeCommand", s.fill("file:///dev/stdin"))), False,
                         (INVALID_PARAMS, "f2")),
    "fill: a FIFO in the workspace": ((lambda s: _request("f3", "workspace/executeCommand",
                                                          s.fill((s.workspace / "pipe.py").as_uri()))), False,
                                      (INVALID_PARAMS, "f3")),
    "fill: a link to /dev/zero in the workspace": ((lambda s: _request("f4", "workspace/executeCommand",
                                                                       s.fill((s.workspace / "zero.py").as_uri()))),
                                                   False, (INVALID_PARAMS, "f4")),
    "fill: a file outside the workspace": ((lambda s: _request("f5", "workspace/executeCommand",
                                                               s.fill(s.outside.as_uri()))), False,
                                           (INVALID_PARAMS, "f5")),
    "fill: an untitled buffer never opened": ((lambda s: _request("f6", "workspace/executeCommand",
                                                                  s.fill("untitled:Untitled-1"))), False,
                                              (INVALID_PARAMS, "f6")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_answered_and_the_server_keeps_serving(session: Session, name: str) -> None:
    make, raw, expected = CASES[name]
    if name.startswith("fill:") and "FIFO" in name and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    server = session.server
    mark = len(server.notifications)
    data = make(session)
    if raw:
        server.send_raw(data)
    else:
        server.send_body(data)
    session.completion_answers()
    if expected is None:
        return
    code, msg_id = expected
    replies = [m for m in server.notifications[mark:] if "method" not in m and m.get("id") == msg_id]
    if not replies and msg_id is not None:
        replies = [server.response(msg_id, timeout=30)]
    assert replies, f"no answer to {name}"
    assert replies[0].get("error", {}).get("code") == code, replies[0]


# --------------------------------------------------------------------------- seeded random fuzz
FUZZ_SEED = 20261130
FUZZ_MESSAGES = 300
FUZZ_CHECK_EVERY = 25
_ODD_VALUES: list[Any] = [None, 0, -1, 2**70, 1.5, float("1e308"), True, "", "x" * 5000, "\ud800", [], {}, [[[]]],
                          {"line": -5, "character": "x"}, {"uri": "file:///dev/zero"}]


def _fuzz_messages(session: Session, rng: Any) -> list[dict[str, Any]]:
    calc = session.calc_uri
    position = {"line": 5, "character": 11}
    selection = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 4}}
    return [
        {"method": "textDocument/completion", "params": {"textDocument": {"uri": calc}, "position": position}},
        {"method": "textDocument/inlineCompletion", "params": {"textDocument": {"uri": calc}, "position": position,
                                                               "context": {"triggerKind": 1}}},
        {"method": "workspace/symbol", "params": {"query": "add"}},
        {"method": "textDocument/codeAction", "params": {"textDocument": {"uri": calc}, "range": selection,
                                                         "context": {"diagnostics": []}}},
        {"method": "workspace/executeCommand", "params": {"command": "codemlm.search",
                                                          "arguments": [{"query": "sub", "k": 3}]}},
        {"method": "workspace/executeCommand", "params": s_fill(calc, selection)},
        {"method": "completionItem/resolve", "params": {"label": "x", "data": {"uri": calc, "version": 1}}},
        {"method": "textDocument/didChange", "params": {"textDocument": {"uri": calc, "version": rng.randint(2, 10**6)},
                                                        "contentChanges": [{"range": selection, "text": "x"}]}},
        {"method": "$/cancelRequest", "params": {"id": rng.randint(1, 50)}},
    ]


def s_fill(uri: str, selection: dict[str, Any]) -> dict[str, Any]:
    return {"command": "codemlm.fillSelection", "arguments": [{"uri": uri, "range": selection, "apply": False}]}


def _mutate_value(value: Any, rng: Any) -> Any:
    """Replace one field somewhere inside ``value`` with an odd value."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        return {**value, key: _mutate_value(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_value(value[index], rng), *value[index + 1 :]]
    return rng.choice(_ODD_VALUES)


def _fuzz_frame(message: dict[str, Any], msg_id: str, rng: Any) -> tuple[bytes, bool]:
    """A frame, and whether it is a sound request (which must get an answer)."""
    is_request = not message["method"].startswith("$/") and message["method"] != "textDocument/didChange"
    envelope = {"jsonrpc": "2.0", **({"id": msg_id} if is_request else {}), **message}
    kind = rng.randrange(6)
    if kind == 0:  # an odd value somewhere in the params
        envelope["params"] = _mutate_value(envelope["params"], rng)
    body = json.dumps(envelope).encode("utf-8", errors="surrogatepass")
    if kind == 1:  # truncated, framed as such
        body = body[: rng.randrange(len(body))]
    elif kind == 2:  # bytes flipped
        data = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        body = bytes(data)
    length = len(body)
    if kind == 3:  # a length a little off either way
        length = max(0, length + rng.choice([-1, 1]) * rng.randint(1, 40))
    header = b"Content-Length: %d\r\n\r\n" % length
    if kind == 4:  # a mangled header: case, line ends, extra headers, garbage before it
        header = rng.choice([
            b"content-LENGTH:%d\n\n" % length,
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % length,
            b"\x00\xffgarbage Content-Length: %d\r\n\r\n" % length,
            b"Content-Length : %d\r\n\r\n" % length,
        ])
    return header + body, is_request and kind == 5


def test_seeded_random_fuzz_never_stops_the_server(session: Session) -> None:
    import random

    rng = random.Random(FUZZ_SEED)
    server = session.server
    sound: list[str] = []
    for i in range(FUZZ_MESSAGES):
        message = rng.choice(_fuzz_messages(session, rng))
        frame, must_answer = _fuzz_frame(message, f"fuzz-{i}", rng)
        server.send_raw(frame)
        if must_answer:
            sound.append(f"fuzz-{i}")
        if (i + 1) % FUZZ_CHECK_EVERY == 0:
            # Blank lines between frames are harmless; inside a frame left open by a length
            # that was too long they complete it, so the next request is read on time.
            server.send_raw(b"\r\n" * 64)
            session.completion_answers()
    assert server.process.poll() is None
    # Every sound request among the broken ones was answered (none swallowed or left hanging).
    answered = {m.get("id") for m in server.notifications if "method" not in m}
    for msg_id in sound:
        if msg_id not in answered:
            server.response(msg_id, timeout=30)
    assert len(sound) > FUZZ_MESSAGES // 10
