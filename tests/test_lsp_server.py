"""The language server end to end over stdio, with a real tiny model that knows calc.py.

One server (and one workspace copy) serves the whole module; each test uses its own
document so they do not disturb one another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests._tiny_model import tiny_model_dir
from tests.lsp.harness import (
    CALC_PY,
    StatusLog,
    make_workspace,
    open_document,
    raw_request,
    running_server,
    send_now,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOLED = CALC_PY.replace("return a - b", "return ")
HOLE = types.Position(line=5, character=11)  # just after "    return " in sub()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("lsp"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LanguageClient, StatusLog]]:
    model_dir = tiny_model_dir(tmp_path_factory)
    options = {"modelDir": str(model_dir), "maxCandidates": 5}
    async with running_server(
        workspace, tmp_path_factory.mktemp("cache"), initialization_options=options
    ) as (client, status):
        await status.wait_for("ready", timeout=120)
        yield client, status


@pytest.fixture
def client(session: tuple[LanguageClient, StatusLog]) -> LanguageClient:
    return session[0]


def _doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def _complete(client: LanguageClient, uri: str, position: types.Position) -> types.CompletionList:
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=_doc(uri), position=position)
    )
    assert isinstance(result, types.CompletionList)
    return result


async def _command(client: LanguageClient, command: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )


def _range(a: int, b: int, c: int, d: int) -> dict[str, Any]:
    return {"start": {"line": a, "character": b}, "end": {"line": c, "character": d}}


def _new_document(workspace: Path, name: str, text: str) -> Path:
    path = workspace / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- lifecycle
async def test_initialize_advertises_every_feature(client: LanguageClient, session: Any) -> None:
    # The capabilities come from the initialize result pytest-lsp stored; re-read them from
    # a second request the server must answer the same way.
    status: StatusLog = session[1]
    states = [s["state"] for s in status.states]
    assert states[0] == "indexing" and "ready" in states
    # Hybrid or lexical: an MLM-only model (the tiny one) gets no dense vote, so no vectors.
    assert "search ready" in status.states[-1]["message"]
    # The file watcher was registered dynamically (VS Code supports it).
    methods = [r.method for r in client.registrations]  # type: ignore[attr-defined]
    assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES in methods


async def test_indexing_reports_work_done_progress(client: LanguageClient) -> None:
    reports = [values for token, values in client.progress_reports.items() if str(token).startswith("codemlm-index")]
    assert reports, client.progress_reports
    first = reports[0]
    assert isinstance(first[0], types.WorkDoneProgressBegin)
    assert isinstance(first[-1], types.WorkDoneProgressEnd)
    middle = [v for v in first if isinstance(v, types.WorkDoneProgressReport)]
    assert middle and middle[-1].percentage == 100
    percentages = [v.percentage for v in middle]
    assert percentages == sorted(percentages)


# --------------------------------------------------------------------------- completion
async def test_completion_fills_the_hole_it_has_learned(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_hole.py", HOLED))
    result = await _complete(client, uri, HOLE)
    items = result.items
    assert 0 < len(items) <= 5
    texts = [item.text_edit.new_text for item in items if isinstance(item.text_edit, types.TextEdit)]
    assert len(texts) == len(items)
    assert "a - b" in texts
    for rank, item in enumerate(items):
        assert isinstance(item.text_edit, types.TextEdit)
        # An insertion at the cursor: the hole has no typed prefix and replaces nothing.
        assert item.text_edit.range == types.Range(start=HOLE, end=HOLE)
        assert item.sort_text == f"{rank:03d}"
        assert item.filter_text == item.text_edit.new_text
        assert item.detail is not None and "score" in item.detail
    assert not result.is_incomplete

    chosen = items[texts.index("a - b")]
    resolved = await client.completion_item_resolve_async(chosen)
    assert isinstance(resolved.documentation, types.MarkupContent)
    assert "    return a - b" in resolved.documentation.value
    assert "def sub(a, b):" in resolved.documentation.value


async def test_completion_inside_a_word_replaces_the_whole_word(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_word.py", CALC_PY))
    line = CALC_PY.splitlines().index("    total = add(1, 2)")
    cursor = types.Position(line=line, character=len("    total = ad"))
    result = await _complete(client, uri, cursor)
    assert result.items
    for item in result.items:
        assert isinstance(item.text_edit, types.TextEdit)
        # From the word's start (the typed "ad" stays as context) to its end.
        assert item.text_edit.range == types.Range(
            start=types.Position(line=line, character=len("    total = ")),
            end=types.Position(line=line, character=len("    total = add")),
        )
        assert item.text_edit.new_text.startswith("ad")
    assert result.is_incomplete  # typing more of the word changes what the model reads


async def test_inline_completion_shows_the_top_candidate(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_inline.py", HOLED))
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=_doc(uri),
            position=HOLE,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    assert len(result.items) == 1
    item = result.items[0]
    assert isinstance(item.insert_text, str) and item.insert_text.strip()
    assert item.range == types.Range(start=HOLE, end=HOLE)
    completion = await _complete(client, uri, HOLE)
    assert isinstance(completion.items[0].text_edit, types.TextEdit)
    assert item.insert_text == completion.items[0].text_edit.new_text  # the same ranked list


async def test_completion_in_a_huge_file_and_in_binary_content(client: LanguageClient, workspace: Path) -> None:
    big = "".join(f"def f_{i}(a, b):\n    return a + b\n\n" for i in range(17_000))  # 51,000 lines
    uri = open_document(client, _new_document(workspace, "big.py", big))
    line = 3 * 13_000 + 1
    result = await _complete(client, uri, types.Position(line=line, character=len("    return ")))
    assert result.items
    for item in result.items:
        assert isinstance(item.text_edit, types.TextEdit)
        assert item.text_edit.range.start.line == line
    binary = open_document(client, workspace / "blob.py", text="abc\x00\x01\x02def\n")
    assert not (await _complete(client, binary, types.Position(line=0, character=2))).items


# A line with characters of 2, 3 and 4 UTF-8 bytes (2 UTF-16 units for the emoji) left of the hole.
_WIDE_PREFIX = '    label = "é€😀"; return '
WIDE = HOLED.replace("    return \n", _WIDE_PREFIX + "\n", 1)


def _wide_cursor(encoding: str) -> types.Position:
    units = {"utf-8": len(_WIDE_PREFIX.encode("utf-8")), "utf-16": len(_WIDE_PREFIX.encode("utf-16-le")) // 2}
    return types.Position(line=HOLE.line, character=units[encoding])


async def _assert_ranges_at(client: LanguageClient, uri: str, cursor: types.Position) -> None:
    result = await _complete(client, uri, cursor)
    assert result.items
    for item in result.items:
        assert isinstance(item.text_edit, types.TextEdit)
        assert item.text_edit.range == types.Range(start=cursor, end=cursor)


async def test_columns_after_non_ascii_text_in_utf16(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_wide16.py", WIDE))
    await _assert_ranges_at(client, uri, _wide_cursor("utf-16"))
    assert _wide_cursor("utf-16").character == len(_WIDE_PREFIX) + 1  # the emoji counts twice


async def test_columns_after_non_ascii_text_in_utf8(workspace: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Neovim 0.11 offers utf-8 first: the server must then count bytes.
    options = {"modelDir": str(tiny_model_dir(tmp_path_factory))}
    async with running_server(workspace, tmp_path / "cache", initialization_options=options, client="neovim") as (
        client,
        status,
    ):
        await status.wait_for("ready", timeout=120)
        uri = open_document(client, _new_document(workspace, "calc_wide8.py", WIDE))
        await _assert_ranges_at(client, uri, _wide_cursor("utf-8"))


async def test_crlf_line_endings(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "calc_crlf.py"
    path.write_bytes(HOLED.replace("\n", "\r\n").encode("utf-8"))
    uri = open_document(client, path, text=path.read_bytes().decode("utf-8"))
    await _assert_ranges_at(client, uri, HOLE)


async def test_positions_outside_the_document_answer_empty(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_outside.py", HOLED))
    for position in (types.Position(line=500, character=0), types.Position(line=0, character=400)):
        assert not (await _complete(client, uri, position)).items
    unknown = (workspace / "never_opened.py").as_uri()
    assert not (await _complete(client, unknown, HOLE)).items
    assert (await _complete(client, uri, HOLE)).items  # and it still serves


def _keep_the_worker_busy(client: LanguageClient, uri: str) -> asyncio.Future[Any]:
    """A fill-selection over the first lines of ``uri``: the model worker's next job for a while."""
    return send_now(
        client,
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(
            command="codemlm.fillSelection",
            arguments=[{"uri": uri, "range": _range(0, 0, 12, 0), "apply": False}],
        ),
    )


async def test_an_edit_racing_a_request_makes_it_stale(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_race.py", HOLED))
    other = open_document(client, _new_document(workspace, "calc_race_busy.py", HOLED))
    # Keep the model worker busy (another document), so the completion is still queued when the
    # edit arrives, however the two processes are scheduled: the race is decided, not timed.
    busy = _keep_the_worker_busy(client, other)
    pending = send_now(client, types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(text_document=_doc(uri), position=HOLE))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
                    text="# edited\n",
                )
            ],
        )
    )
    stale = await pending  # asked about version 1; version 2 arrived before it was answered
    assert not stale.items and stale.is_incomplete  # the client asks again
    await busy
    moved = types.Position(line=HOLE.line + 1, character=HOLE.character)
    fresh = await _complete(client, uri, moved)
    assert fresh.items and all(
        isinstance(i.text_edit, types.TextEdit) and i.text_edit.range.start == moved for i in fresh.items
    )


async def test_cancel_request_is_honoured(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_cancel.py", HOLED))
    # Keep the model worker busy so the completion is still queued when the cancel arrives.
    busy = _keep_the_worker_busy(client, uri)
    request = send_now(
        client, types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(text_document=_doc(uri), position=HOLE),
        msg_id="cancel-me",
    )
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as raised:
        await request
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled
    await busy
    assert (await _complete(client, uri, HOLE)).items


# --------------------------------------------------------------------------- fill selection
async def test_fill_selection_replaces_the_selection(client: LanguageClient, workspace: Path) -> None:
    text = CALC_PY.replace("return a * b", "return b")
    uri = open_document(client, _new_document(workspace, "calc_fill.py", text))
    selection = _range(9, 11, 9, 12)  # the "b" after mul's return
    before = len(client.applied_edits)  # type: ignore[attr-defined]
    result = await _command(client, "codemlm.fillSelection", {"uri": uri, "range": selection})
    assert isinstance(result, list) and result
    assert "a * b" in [r["text"] for r in result]
    assert all(isinstance(r["score"], float) for r in result)
    edits = client.applied_edits[before:]  # type: ignore[attr-defined]
    assert len(edits) == 1
    change = edits[0].edit.document_changes[0]
    assert change.text_document.uri == uri and change.text_document.version == 1
    assert change.edits[0].new_text == result[0]["text"]
    assert change.edits[0].range == types.Range(
        start=types.Position(line=9, character=11), end=types.Position(line=9, character=12)
    )
    # apply: false only answers.
    await _command(client, "codemlm.fillSelection", {"uri": uri, "range": selection, "apply": False})
    assert len(client.applied_edits) == before + 1  # type: ignore[attr-defined]


async def test_fill_selection_rejects_bad_arguments(client: LanguageClient, workspace: Path) -> None:
    uri = (workspace / "calc.py").as_uri()
    for arguments in ([], [{"uri": uri}], [{"uri": uri, "range": "all"}], [{"uri": 3, "range": _range(0, 0, 0, 1)}],
                      [{"uri": uri, "range": _range(0, 0, 0, 1), "apply": "yes"}]):
        with pytest.raises(JsonRpcException) as raised:
            await _command(client, "codemlm.fillSelection", *arguments)
        assert raised.value.code == types.ErrorCodes.InvalidParams


async def test_code_action_offers_fill_on_a_selection(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, _new_document(workspace, "calc_action.py", CALC_PY))

    async def actions(a: int, b: int, c: int, d: int) -> list[Any]:
        result = await raw_request(
            client,
            types.TEXT_DOCUMENT_CODE_ACTION,
            types.CodeActionParams(
                text_document=_doc(uri),
                range=types.Range(start=types.Position(line=a, character=b), end=types.Position(line=c, character=d)),
                context=types.CodeActionContext(diagnostics=[]),
            ),
        )
        return list(result or [])

    offered = await actions(1, 11, 1, 16)
    assert len(offered) == 1
    action = offered[0]
    assert action["kind"] == types.CodeActionKind.RefactorRewrite.value
    assert action["command"]["command"] == "codemlm.fillSelection"
    assert action["command"]["arguments"] == [{"uri": uri, "range": _range(1, 11, 1, 16)}]
    assert await actions(1, 11, 1, 11) == []  # no selection, nothing to fill


# --------------------------------------------------------------------------- search
async def test_workspace_symbol_finds_definitions(client: LanguageClient, workspace: Path) -> None:
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="rb_push ring buffer"))
    assert symbols and all(isinstance(s, types.SymbolInformation) for s in symbols)
    # The tiny model's vectors are noise, so only presence is certain, not the rank.
    named = [s for s in symbols if s.name == "rb_push"]
    assert named
    top = named[0]
    assert isinstance(top, types.SymbolInformation)
    assert top.kind == types.SymbolKind.Function
    path = workspace / "native" / "ring_buffer.c"
    assert top.location.uri == path.as_uri()
    lines = path.read_text().splitlines()
    assert lines[top.location.range.start.line].startswith("int rb_push(")
    assert lines[top.location.range.end.line] == "}"
    assert top.location.range.end.character == 1
    assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []


async def test_search_command_returns_the_documented_shape(client: LanguageClient, workspace: Path) -> None:
    results = await _command(client, "codemlm.search", {"query": "rb_push ring buffer", "k": 10})
    assert 0 < len(results) <= 10
    assert len(await _command(client, "codemlm.search", {"query": "rb_push ring buffer", "k": 2})) == 2
    for result in results:
        assert {"uri", "range", "name", "kind", "score", "snippet"} <= set(result)
        assert result["uri"].startswith(workspace.as_uri())
        assert result["range"]["start"]["line"] <= result["range"]["end"]["line"]
    assert "rb_push" in [r["name"] for r in results]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for bad in ({"query": ""}, {"query": "x", "k": 0}, {"query": "x", "k": "3"}, {"k": 3}):
        with pytest.raises(JsonRpcException) as raised:
            await _command(client, "codemlm.search", bad)
        assert raised.value.code == types.ErrorCodes.InvalidParams


async def test_an_unsaved_change_is_searchable(client: LanguageClient, workspace: Path) -> None:
    path = _new_document(workspace, "notes_buffer.py", "def placeholder():\n    return None\n")
    uri = open_document(client, path)
    added = "\n\ndef frobnicate_widgets(count):\n    return count * 2\n"
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=path.read_text() + added)],
        )
    )
    results = await _command(client, "codemlm.search", {"query": "frobnicate_widgets", "k": 10})
    hits = [r for r in results if r["name"] == "frobnicate_widgets"]
    assert hits and hits[0]["uri"] == uri
    assert hits[0]["range"]["start"]["line"] == 4
    assert "frobnicate" not in path.read_text()  # only the buffer has it


async def test_saved_text_is_indexed(client: LanguageClient, workspace: Path) -> None:
    path = _new_document(workspace, "saved_module.py", "def old_name():\n    return 0\n")
    uri = open_document(client, path)
    path.write_text("def plonk_serializer():\n    return 0\n", encoding="utf-8")
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=_doc(uri), text=path.read_text(encoding="utf-8"))
    )
    results = await _command(client, "codemlm.search", {"query": "plonk_serializer", "k": 10})
    assert "plonk_serializer" in [r["name"] for r in results if r["path"] == "saved_module.py"]


async def test_closing_an_unsaved_buffer_puts_the_disk_version_back(client: LanguageClient, workspace: Path) -> None:
    path = _new_document(workspace, "scratch_buffer.py", "def placeholder_two():\n    return None\n")
    uri = open_document(client, path)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="def quuxify_records():\n    pass\n")],
        )
    )

    async def names() -> list[str]:
        results = await _command(client, "codemlm.search", {"query": "quuxify_records placeholder_two", "k": 10})
        return [r["name"] for r in results if r["path"] == "scratch_buffer.py"]

    assert await names() == ["quuxify_records"]
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=_doc(uri)))
    assert await names() == ["placeholder_two"]  # the edit was never saved


async def test_watched_file_events_reindex_the_workspace(client: LanguageClient, workspace: Path) -> None:
    path = workspace / "created_outside.py"
    path.write_text("def zorblax_handler():\n    return 1\n", encoding="utf-8")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=path.as_uri(), type=types.FileChangeType.Created)]
        )
    )

    async def found() -> bool:
        results = await _command(client, "codemlm.search", {"query": "zorblax_handler", "k": 10})
        return "zorblax_handler" in [r["name"] for r in results]

    deadline = asyncio.get_running_loop().time() + 60
    while not await found():
        assert asyncio.get_running_loop().time() < deadline, "the created file was never indexed"
        await asyncio.sleep(0.2)
    path.unlink()
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(changes=[types.FileEvent(uri=path.as_uri(), type=types.FileChangeType.Deleted)])
    )
    deadline = asyncio.get_running_loop().time() + 60
    while await found():
        assert asyncio.get_running_loop().time() < deadline, "the deleted file stayed in the index"
        await asyncio.sleep(0.2)


async def test_reindex_command_reports_what_it_did(client: LanguageClient, workspace: Path) -> None:
    (workspace / "new_module.py").write_text("def brand_new_helper():\n    return 42\n", encoding="utf-8")
    assert await _command(client, "codemlm.reindex") == {"started": True}  # answers at once
    summary = await _command(client, "codemlm.reindex", {"wait": True})
    assert summary["indexed"] is True and summary["filesSeen"] >= summary["filesIndexed"]
    names = [r["name"] for r in await _command(client, "codemlm.search", {"query": "brand_new_helper", "k": 10})]
    assert "brand_new_helper" in names
    with pytest.raises(JsonRpcException):
        await _command(client, "codemlm.reindex", {"unexpected": True})
    with pytest.raises(JsonRpcException):
        await _command(client, "codemlm.reindex", 1, 2)


# --------------------------------------------------------------------------- settings
async def test_settings_change_turns_completion_off_and_warns_about_bad_fields(
    client: LanguageClient, workspace: Path, session: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    uri = open_document(client, _new_document(workspace, "calc_settings.py", HOLED))
    model_dir = str(tiny_model_dir(tmp_path_factory))
    warnings_before = len(client.messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codemlm": {"modelDir": model_dir, "completion": {"enabled": False}, "maxCandidates": "many"}}
        )
    )
    assert not (await _complete(client, uri, HOLE)).items
    new_messages = client.messages[warnings_before:]
    assert any("maxCandidates" in m.message and m.type == types.MessageType.Warning for m in new_messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codemlm": {"modelDir": model_dir, "maxCandidates": 2}})
    )
    items = (await _complete(client, uri, HOLE)).items
    assert 0 < len(items) <= 2
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codemlm": {"modelDir": model_dir, "maxCandidates": 5}})
    )


async def test_a_model_with_a_static_table_and_a_search_encoder_searches_hybrid_and_rereads_the_top(
    client: LanguageClient, session: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import shutil

    import numpy as np

    from codemlm.checkpoint import load_model_dir, save_model_dir
    from codemlm.search_rerank import SEARCH_ENCODER_DIR
    from codemlm.static_embedder import STATIC_FILE, save_static_table

    plain_model = tiny_model_dir(tmp_path_factory)
    model = tmp_path_factory.mktemp("reranking") / "model"
    shutil.copytree(plain_model, model)
    encoder = load_model_dir(plain_model)  # any real encoder will do: the test checks the wiring
    save_model_dir(model / SEARCH_ENCODER_DIR, encoder.model, encoder.tokenizer,
                   summary={"search_rerank": {"weight": 5.0, "depth": 10}})
    table = np.random.default_rng(0).standard_normal((encoder.tokenizer.vocab_size, 16)).astype(np.float32)
    save_static_table(model / STATIC_FILE, table, encoder.tokenizer, {"dense_weight": 1.0})
    status: StatusLog = session[1]
    query = {"query": "add two numbers", "k": 5}

    async def scores(settings: dict[str, Any]) -> list[float]:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codemlm": {"maxCandidates": 5, **settings}})
        )
        for _ in range(100):  # the model reloads on the worker; a search never waits for it
            first = [r["score"] for r in await _command(client, "codemlm.search", query)]
            await asyncio.sleep(0.05)
            again = [r["score"] for r in await _command(client, "codemlm.search", query)]
            if first == again:
                return again
        raise AssertionError("search scores never settled")

    try:
        plain = await scores({"modelDir": str(model), "searchRerank": False})
        # The index embeds with the model's static table, as `codemlm search` does: hybrid search.
        await wait_until(lambda: any("hybrid search ready" in str(s.get("message")) for s in status.states), 60)
        reread = await scores({"modelDir": str(model)})
        for _ in range(100):
            if reread != plain:
                break
            await asyncio.sleep(0.1)
            reread = await scores({"modelDir": str(model)})
        assert plain and len(reread) == len(plain)
        assert reread != plain  # 5 x the encoder's cosine added to the top ten
        assert reread == sorted(reread, reverse=True)
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codemlm": {"modelDir": str(plain_model), "maxCandidates": 5}})
        )
