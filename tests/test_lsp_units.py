"""The server's pure parts: settings parsing, positions on windows, the latest-request runner."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from lsprotocol import types

from codemlm.errors import InputError, PositionError
from lsp_server.__main__ import build_parser
from lsp_server.document import (
    CONTEXT_CHARS_AFTER,
    CONTEXT_CHARS_BEFORE,
    DocumentLines,
    language_for_document,
    position_encoding,
)
from lsp_server.inference import STALE, LatestRequestRunner
from lsp_server.options import MAX_CANDIDATES_LIMIT, ServerOptions, parse_options
from lsp_server.pygls_shim import LspLinesWorkspace

UTF8, UTF16, UTF32 = (types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf32)


# --------------------------------------------------------------------------- settings
def test_settings_defaults_when_nothing_is_given() -> None:
    raws: list[object] = [None, {}, {"codemlm": None}, {"codemlm": {}}]
    for raw in raws:
        options, problems = parse_options(raw)
        assert options == ServerOptions()
        assert problems == []


def test_settings_read_from_the_section_or_bare() -> None:
    section = {
        "modelDir": "/models/small",
        "completion": {"enabled": False},
        "inlineCompletion": {"enabled": True},
        "maxCandidates": 8,
        "indexPath": "/tmp/idx.sqlite",
        "languages": ["python", "go"],
    }
    expected = ServerOptions(
        model_dir="/models/small",
        completion_enabled=False,
        inline_completion_enabled=True,
        max_candidates=8,
        index_path="/tmp/idx.sqlite",
        languages=("python", "go"),
    )
    assert parse_options({"codemlm": section}) == (expected, [])
    assert parse_options(section) == (expected, [])


def test_invalid_fields_fall_back_to_defaults_and_say_why() -> None:
    options, problems = parse_options(
        {
            "codemlm": {
                "modelDir": 42,
                "completion": "yes",
                "inlineCompletion": {"enabled": "no"},
                "maxCandidates": MAX_CANDIDATES_LIMIT + 1,
                "languages": ["python", "cobol"],
                "indexPath": "/ok.sqlite",
                "serverPath": "/editor/only/setting",  # the extension's own key: ignored quietly
            }
        }
    )
    assert options == ServerOptions(index_path="/ok.sqlite", languages=("python",))
    text = "\n".join(problems)
    for field in ("modelDir", "completion must", "inlineCompletion.enabled", "maxCandidates", "cobol"):
        assert field in text
    assert "serverPath" not in text
    assert len(problems) == 5


@pytest.mark.parametrize("bad", [True, 0, -3, 2.5, "5"])
def test_max_candidates_rejects_non_counts(bad: object) -> None:
    options, problems = parse_options({"maxCandidates": bad})
    assert options.max_candidates == ServerOptions().max_candidates
    assert len(problems) == 1


def test_settings_that_are_not_objects_are_a_problem_not_a_crash() -> None:
    for raw in ([1, 2], "codemlm", 3, {"codemlm": [1]}):
        options, problems = parse_options(raw)
        assert options == ServerOptions()
        assert len(problems) == 1


def test_language_filter() -> None:
    assert ServerOptions().language_enabled("rust")
    assert not ServerOptions().language_enabled(None)
    only_go = ServerOptions(languages=("go",))
    assert only_go.language_enabled("go") and not only_go.language_enabled("python")
    none_at_all, _ = parse_options({"languages": []})
    assert none_at_all.languages == () and not none_at_all.language_enabled("python")


# --------------------------------------------------------------------------- documents
def test_language_from_language_id_then_extension() -> None:
    assert language_for_document("typescriptreact", "file:///a/b.txt") == "tsx"
    assert language_for_document("plaintext", "file:///a/b.rs") == "rust"
    assert language_for_document(None, "file:///a/B.PY") == "python"
    assert language_for_document("markdown", "file:///a/readme.md") is None


def test_positions_in_each_encoding_round_trip_through_bytes() -> None:
    text = "a = '😀é'\r\nb = 1\rc = 'x'\n"
    lines = DocumentLines(text)
    assert lines.line_count == 4  # CRLF, lone CR and LF all end lines; the last line is empty
    # After the emoji and é, before the closing quote: "a = '" is 5 units, the emoji 2 in UTF-16.
    cases = {UTF16: 8, UTF32: 7, UTF8: 11}
    for encoding, character in cases.items():
        window = lines.window(0, 0, encoding)
        position = types.Position(line=0, character=character)
        offset = window.byte_offset(position)
        assert window.data[:offset].decode("utf-8") == "a = '😀é"
        assert window.position(offset) == position
    window = lines.window(2, 2, UTF16)
    offset = window.byte_offset(types.Position(line=2, character=4))
    assert window.data[offset:].decode("utf-8").startswith("'x'")


@pytest.mark.parametrize("odd_break", ["\x0c", "\x0b", "\x1c", "\u2028", "\x85"])
def test_incremental_edits_count_lines_the_lsp_way(odd_break: str) -> None:
    """Only \\n, \\r\\n and \\r end a line for an editor; other Unicode breaks do not."""
    workspace = LspLinesWorkspace("file:///w", types.TextDocumentSyncKind.Incremental, [], UTF16)
    uri = "file:///w/a.py"
    text = f"x = 1\r\n{odd_break}\ndef alpha():\r    pass\n"
    workspace.put_text_document(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    document = workspace.get_text_document(uri)
    assert len(document.lines) == 4  # "x = 1", the odd character's line, "def alpha():", "    pass"
    edit = types.Range(start=types.Position(line=2, character=4), end=types.Position(line=2, character=9))
    workspace.update_text_document(
        types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        types.TextDocumentContentChangePartial(range=edit, text="omega"),
    )
    assert document.source == f"x = 1\r\n{odd_break}\ndef omega():\r    pass\n"


def test_negotiated_encoding_is_normalized_to_the_enum() -> None:
    assert position_encoding(UTF8) is UTF8
    assert position_encoding("utf-32") is UTF32
    assert position_encoding(None) is UTF16 and position_encoding("utf-7") is UTF16
    # What pygls hands over compares equal to "utf-16" but prints as the member name: the
    # window must branch on the enum, or a UTF-16 client gets byte columns.
    window = DocumentLines("é = 1\n").window(0, 0, position_encoding(UTF16))
    assert window.byte_offset(types.Position(line=0, character=1)) == 2


def test_positions_outside_the_document_or_inside_a_character_raise() -> None:
    lines = DocumentLines("x = '😀'\n")
    with pytest.raises(PositionError):
        lines.check_position(types.Position(line=5, character=0))
    window = lines.window(0, 0, UTF16)
    with pytest.raises(PositionError):
        window.byte_offset(types.Position(line=0, character=99))  # past the line end
    with pytest.raises(PositionError):
        window.byte_offset(types.Position(line=0, character=6))  # between the surrogates
    with pytest.raises(PositionError):
        lines.window(0, 0, UTF8).byte_offset(types.Position(line=0, character=6))  # inside the emoji


def test_window_of_a_huge_file_is_small_and_keeps_document_lines() -> None:
    text = "".join(f"value_{i} = compute({i})\n" for i in range(50_000))
    started = time.perf_counter()
    lines = DocumentLines(text)
    window = lines.window(40_000, 40_000, UTF16)
    position = types.Position(line=40_000, character=6)
    offset = window.byte_offset(position)
    elapsed = time.perf_counter() - started
    assert window.data[offset:].startswith(b"40000 = compute")
    assert window.position(offset) == position
    assert 1000 < len(window.text) < 2 * (CONTEXT_CHARS_BEFORE + CONTEXT_CHARS_AFTER)  # a window, not the file
    assert window.first_line < 40_000 < window.first_line + window.positions.line_count
    assert elapsed < 5.0  # generous: only catches a quadratic slip, not a timing target


def test_a_single_enormous_line_is_refused_with_a_reason() -> None:
    lines = DocumentLines("x = [" + "1, " * 100_000 + "]\n")
    with pytest.raises(InputError, match="too long"):
        lines.window(0, 0, UTF16)


def test_lone_surrogates_are_not_text() -> None:
    with pytest.raises(InputError):
        DocumentLines("x = '\ud800'\n").window(0, 0, UTF16)


# --------------------------------------------------------------------------- the runner
def test_a_newer_request_supersedes_one_still_queued() -> None:
    runner = LatestRequestRunner()
    gate = threading.Event()
    ran: list[str] = []

    def slow(name: str) -> str:
        gate.wait(5)
        ran.append(name)
        return name

    async def scenario() -> list[object]:
        blocker = asyncio.ensure_future(runner.run_latest("file:///other", "hole", slow, "blocker"))
        await asyncio.sleep(0.05)  # the worker is now busy with the blocker
        first = asyncio.ensure_future(runner.run_latest("file:///a", "hole", slow, "first"))
        second = asyncio.ensure_future(runner.run_latest("file:///a", "hole", slow, "second"))
        inline = asyncio.ensure_future(runner.run_latest("file:///a", "inline", slow, "inline"))
        await asyncio.sleep(0.05)
        gate.set()
        return list(await asyncio.gather(blocker, first, second, inline))

    try:
        results = asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert results == ["blocker", STALE, "second", "inline"]
    assert ran == ["blocker", "second", "inline"]  # the superseded job never ran


def test_an_edit_makes_a_running_job_stale() -> None:
    runner = LatestRequestRunner()
    started = threading.Event()
    gate = threading.Event()

    def job() -> str:
        started.set()
        gate.wait(5)
        return "done"

    async def scenario() -> object:
        task = asyncio.ensure_future(runner.run_latest("file:///a", "hole", job))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        runner.invalidate("file:///a")  # didChange while the model runs
        gate.set()
        return await task

    try:
        assert asyncio.run(scenario()) is STALE
    finally:
        runner.shutdown()


def test_cancelling_the_waiter_drops_the_queued_job() -> None:
    runner = LatestRequestRunner()
    gate = threading.Event()
    ran: list[str] = []

    def job(name: str) -> str:
        gate.wait(5)
        ran.append(name)
        return name

    async def scenario() -> None:
        busy = asyncio.ensure_future(runner.run_latest("file:///b", "hole", job, "busy"))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(runner.run_latest("file:///a", "hole", job, "queued"))
        await asyncio.sleep(0.05)
        queued.cancel()  # what pygls does on $/cancelRequest
        await asyncio.sleep(0.05)  # the loop passes the cancellation on to the executor's future
        gate.set()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await queued
        await runner.run(lambda: None)  # everything before this has finished

    try:
        asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert ran == ["busy"]


# --------------------------------------------------------------------------- command line
def test_command_line() -> None:
    args = build_parser().parse_args(["--tcp", "--port", "9001", "--log-file", "/tmp/x.log"])
    assert (args.tcp, args.port, args.log_file) == (True, 9001, "/tmp/x.log")
    assert build_parser().parse_args([]).tcp is False


def test_search_rerank_is_on_by_default_and_takes_only_a_flag() -> None:
    assert ServerOptions().search_rerank is True
    assert parse_options({"searchRerank": False}) == (ServerOptions(search_rerank=False), [])
    options, problems = parse_options({"searchRerank": "off"})
    assert options.search_rerank is True and problems == ["searchRerank must be true or false, got 'off'"]
