"""Masked-span completion with a real tiny model that learned one file, and the `complete` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codemlm.checkpoint import LoadedModel, load_model_dir
from codemlm.cli import main
from codemlm.completion_ranker import Ranker
from codemlm.errors import InputError, PositionError
from codemlm.infill import Candidate, InfillConfig, InfillEngine, extend_hole
from codemlm.syntax import error_count
from tests._tiny_model import SNIPPET, TRUSTING_WEIGHTS, tiny_model_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def loaded(model_dir: Path) -> LoadedModel:
    torch.set_num_threads(1)
    return load_model_dir(model_dir)


# The tiny model knows its file by heart: a ranker that trusts its log-probability, as the
# ranker.json of a well-trained model would (the shipped defaults are fitted to a weak model).
TRUSTING = Ranker(TRUSTING_WEIGHTS)


@pytest.fixture(scope="session")
def engine(loaded: LoadedModel) -> InfillEngine:
    return InfillEngine(loaded, config=InfillConfig(precision="fp32"), ranker=TRUSTING)


def _cursor_after(text: str, marker: str) -> int:
    return len(text[: text.index(marker) + len(marker)].encode("utf-8"))


HOLED = SNIPPET.replace("return a + b", "return ")


def _assert_well_formed(candidates: list[Candidate], k: int) -> None:
    assert 0 < len(candidates) <= k
    keys = [c.text.strip() for c in candidates]
    assert all(keys), "no empty candidates"
    assert len(set(keys)) == len(keys), "no duplicates (whitespace-trimmed)"
    # Scores are sorted within each syntax group, and every syntax_ok=False comes last.
    flags = [c.syntax_ok for c in candidates]
    assert flags == sorted(flags, reverse=True)
    for group in (True, False):
        scores = [c.score for c in candidates if c.syntax_ok is group]
        assert scores == sorted(scores, reverse=True)


def test_fills_a_three_token_hole_it_has_learned(engine: InfillEngine) -> None:
    cursor = _cursor_after(HOLED, "return ")
    candidates = engine.complete(HOLED, cursor, language="python", k=5)
    _assert_well_formed(candidates, 5)
    texts = [c.text for c in candidates]
    assert "a + b" in texts  # the healed space is not repeated
    assert all(c.start_byte == cursor and c.end_byte == cursor for c in candidates)


def test_selection_is_replaced_by_the_learned_expression(engine: InfillEngine) -> None:
    start = len(SNIPPET[: SNIPPET.index("a * b")].encode())
    candidates = engine.complete(SNIPPET, start, start + 5, language="python", k=5)
    _assert_well_formed(candidates, 5)
    assert "a * b" in [c.text for c in candidates]
    assert all((c.start_byte, c.end_byte) == (start, start + 5) for c in candidates)


def test_flagged_candidates_really_parse_worse_than_the_hole(engine: InfillEngine) -> None:
    cursor = _cursor_after(HOLED, "return ")
    candidates = engine.complete(HOLED, cursor, language="python", k=10)
    _assert_well_formed(candidates, 10)
    baseline = error_count(HOLED, "python")
    for c in candidates:
        filled = HOLED[:cursor] + c.text + HOLED[cursor:]
        assert (error_count(filled, "python") <= baseline) is c.syntax_ok, c


def test_a_candidate_that_breaks_the_parse_is_flagged_and_ranked_last(engine: InfillEngine) -> None:
    """The ranking step alone, on hand-made candidates (independent of what the model drew)."""
    from codemlm.infill import _Window

    window = _Window(left_ids=[], right_ids=[], left_text="def add(a, b):\n    return ", right_text="\n")
    made = [Candidate("a +", -0.1, 5, 5, True), Candidate("(a, b", -0.2, 5, 5, True),
            Candidate("a + b", -0.5, 5, 5, True), Candidate("b", -0.9, 5, 5, True)]  # by score
    ranked = engine._rank(made, window, "python", k=4)
    assert [c.text for c in ranked] == ["a + b", "b", "a +", "(a, b"]
    assert [c.syntax_ok for c in ranked] == [True, True, False, False]
    assert [c.text for c in engine._rank(made, window, None, k=2)] == ["a +", "(a, b"]


def test_unknown_language_skips_the_syntax_check(engine: InfillEngine) -> None:
    cursor = _cursor_after(HOLED, "return ")
    for language in (None, "cobol"):
        candidates = engine.complete(HOLED, cursor, language=language, k=10)
        assert candidates and all(c.syntax_ok for c in candidates)
        assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)


def test_single_line_holes_stop_at_the_line_end(engine: InfillEngine) -> None:
    text = SNIPPET.replace("total = add(1, 2)", "total = ")
    cursor = _cursor_after(text, "total = ")
    candidates = engine.complete(text, cursor, language="python", k=10)
    assert candidates
    assert not any("\n" in c.text or "\r" in c.text for c in candidates)


def test_multi_line_selection_gets_block_lengths(engine: InfillEngine) -> None:
    start = len(SNIPPET[: SNIPPET.index("    total")].encode())
    end = len(SNIPPET.encode())
    hole = engine._shape_hole(SNIPPET, SNIPPET.encode(), start, end)
    assert not hole.single_line
    lengths = engine._lengths(hole)
    assert max(lengths) >= max(InfillConfig().block_lengths)
    candidates = engine.complete(SNIPPET, start, end, language="python", k=5)
    _assert_well_formed(candidates, 5)


def test_cursor_inside_an_identifier_replaces_its_rest(engine: InfillEngine) -> None:
    cursor = _cursor_after(SNIPPET, "print(to")
    assert extend_hole(SNIPPET, cursor, cursor) == cursor + len("tal")
    # At the end of a word or between non-word characters nothing is extended.
    assert extend_hole(SNIPPET, cursor + 3, cursor + 3) == cursor + 3
    candidates = engine.complete(SNIPPET, cursor, language="python", k=3)
    assert candidates and all(c.end_byte == cursor + 3 for c in candidates)


def test_typed_word_is_continued_when_enabled(loaded: LoadedModel) -> None:
    text = SNIPPET.replace("return a + b", "ret")
    cursor = _cursor_after(text, "    ret")
    typing = InfillEngine(loaded, config=InfillConfig(precision="fp32", complete_typed_word=True), ranker=TRUSTING)
    candidates = typing.complete(text, cursor, language="python", k=5)
    _assert_well_formed(candidates, 5)
    assert "urn a + b" in [c.text for c in candidates]
    assert all(c.start_byte == cursor == c.end_byte for c in candidates)
    # Default: "ret" is context, nothing continues the word.
    plain = InfillEngine(loaded, config=InfillConfig(precision="fp32"), ranker=TRUSTING)
    assert not any(c.text.startswith("urn") for c in plain.complete(text, cursor, language="python", k=5))
    # A word no token starts with: the engine falls back to completing after the cursor.
    odd = text.replace("    ret", "    retéééé")
    assert typing.complete(odd, _cursor_after(odd, "retéééé"), language="python")


def test_window_fits_the_budget_and_cuts_at_lines(loaded: LoadedModel) -> None:
    # No gate: the tiny model knows only its own file, so on this one nothing is likely to it.
    engine = InfillEngine(loaded, max_context_tokens=64, config=InfillConfig(precision="fp32", min_probability=0))
    text = "\n".join(f"value_{i} = compute({i}, {i + 1})" for i in range(2000)) + "\n"
    cursor = _cursor_after(text, "value_1000 = ")
    hole = engine._shape_hole(text, text.encode(), cursor, cursor)
    window = engine._window(text.encode(), hole, 8)
    assert 2 + len(window.left_ids) + 8 + len(window.right_ids) <= 64
    assert len(window.left_ids) > len(window.right_ids) > 0
    assert window.left_text.startswith("value_")  # a whole line
    assert window.right_text.endswith("\n")
    assert window.left_text.endswith("value_1000 = ")
    candidates = engine.complete(text, cursor, language="python", k=3)
    assert candidates


@pytest.mark.parametrize(
    ("text", "start", "end", "error", "message"),
    [
        ("", 0, None, InputError, "empty document"),
        ("a\x00b", 1, None, InputError, "binary"),
        ("abc", 4, None, PositionError, "outside the document"),
        ("abc", -1, None, PositionError, "outside the document"),
        ("abc", 2, 1, PositionError, "before start"),
        ("abc", 1, 9, PositionError, "outside the document"),
        ("é", 1, None, PositionError, "inside a multi-byte"),
        ("a\ud800b", 0, None, InputError, "not valid Unicode"),
    ],
)
def test_bad_input_raises_clear_errors(
    engine: InfillEngine, text: str, start: int, end: int | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        engine.complete(text, start, end)


def test_k_must_be_positive(engine: InfillEngine) -> None:
    with pytest.raises(InputError, match="k must be"):
        engine.complete(HOLED, 3, k=0)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="session")
def trusting_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a ranker.json beside it that trusts its log-probability."""
    copy = tmp_path_factory.mktemp("trusting") / "model"
    shutil.copytree(model_dir, copy)
    (copy / "ranker.json").write_text(json.dumps({"weights": TRUSTING.weights}), encoding="utf-8")
    return copy


def test_cli_complete_prints_json(trusting_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "ops.py"
    source.write_text(HOLED, encoding="utf-8")
    line = HOLED[: HOLED.index("return ")].count("\n") + 1
    column = len("    return ") + 1
    rc = main(["complete", str(source), "--line", str(line), "--column", str(column),
               "--model", str(trusting_dir), "--json", "-k", "5"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["language"] == "python"
    assert "a + b" in [c["text"] for c in result["candidates"]]
    assert result["candidates"][0]["start"] == {"line": line, "column": column}
    assert all(c["source"] for c in result["candidates"])


@pytest.fixture(scope="session")
def default_ranker_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without its ranker.json: the engine falls back to the code's defaults."""
    copy = tmp_path_factory.mktemp("defaults") / "model"
    shutil.copytree(model_dir, copy)
    (copy / "ranker.json").unlink()
    return copy


def test_cli_complete_reads_sibling_files(
    default_ranker_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = default_ranker_dir
    (tmp_path / "service.py").write_text("s = Service()\ns.store.flush_everything()\n", encoding="utf-8")
    source = tmp_path / "main.py"
    source.write_text("def close(s):\n    s.store.\n", encoding="utf-8")
    args = ["complete", str(source), "--line", "2", "--column", "13", "--model", str(model_dir), "--json", "-k", "10"]
    assert main(args) == 0
    texts = [c["text"] for c in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["candidates"]]
    assert "flush_everything" in texts
    assert main([*args, "--no-siblings"]) == 0
    texts = [c["text"] for c in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["candidates"]]
    assert "flush_everything" not in texts


def test_cli_complete_human_output(trusting_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "ops.py"
    source.write_text(SNIPPET, encoding="utf-8")
    rc = main(["complete", str(source), "--line", "6", "--column", "12", "--end-line", "6",
               "--end-column", "17", "--model", str(trusting_dir)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "candidates for" in out and "'a - b'" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (SNIPPET, ["--line", "99", "--column", "1"], "line 99 is past the end of the file"),
        (SNIPPET, ["--line", "1", "--column", "40"], "column 40 is past the end of line 1"),
        (SNIPPET, ["--line", "0", "--column", "1"], "1-based"),
        (SNIPPET, ["--line", "2", "--column", "1", "--end-line", "1", "--end-column", "1"], "ends before"),
        (SNIPPET, ["--line", "1", "--column", "1", "--end-line", "2"], "go together"),
        ("", ["--line", "1", "--column", "1"], "is empty"),
        ("x = 1\x00\n", ["--line", "1", "--column", "1"], "binary"),
    ],
)
def test_cli_complete_bad_input_is_one_line_and_exit_1(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, args: list[str], message: str
) -> None:
    source = tmp_path / "f.py"
    source.write_text(content, encoding="utf-8")
    rc = main(["complete", str(source), *args, "--model", str(model_dir)])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("codemlm: error:") and message in err


def test_cli_complete_missing_file_and_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complete", str(tmp_path / "nope.py"), "--line", "1", "--column", "1"]) == 1
    assert "no such file" in capsys.readouterr().err
    source = tmp_path / "f.py"
    source.write_text("x = 1\n", encoding="utf-8")
    rc = main(["complete", str(source), "--line", "1", "--column", "1", "--model", str(tmp_path / "nomodel")])
    assert rc == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


_CODE_ALPHABET = st.sampled_from(["a", "b", "x", "_", " ", "\t", "\n", "\r\n", "(", ")", "=", "+", ".",
                                  "é", "😀", "中", "def ", "return ", ":", "'", "#"])


@pytest.fixture(scope="session")
def quick_engine(loaded: LoadedModel) -> InfillEngine:
    """Short window, few lengths: the property test is about holes and windows, not quality."""
    config = InfillConfig(precision="fp32", max_context_tokens=48, line_lengths=(1, 3), block_lengths=(2, 4),
                          identifier_lengths=(1, 2), refine_lengths=1, branches=1)
    return InfillEngine(loaded, config=config, ranker=TRUSTING)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_CODE_ALPHABET, min_size=1, max_size=40).map("".join), st.data())
def test_any_text_and_position_gives_well_formed_candidates(quick_engine: InfillEngine, text: str,
                                                             data: st.DataObject) -> None:
    chars = data.draw(st.integers(0, len(text)))
    chars_end = data.draw(st.one_of(st.none(), st.integers(chars, len(text))))
    start = len(text[:chars].encode())
    end = None if chars_end is None else len(text[:chars_end].encode())
    language = data.draw(st.sampled_from([None, "python", "go"]))
    candidates = quick_engine.complete(text, start, end, language=language)
    size = len(text.encode())
    for c in candidates:
        assert c.text.strip()
        assert start <= c.start_byte <= c.end_byte <= size
        if end is None or "\n" not in text.encode()[start:end].decode():
            assert "\n" not in c.text and "\r" not in c.text


# ---------------------------------------------------------------------- candidate sources and ranking
_SERVICE = '''class Service:
    def __init__(self, store):
        self.store = store
        self.hits = 0

    def get(self, key):
        self.hits += 1
        return self.store.fetch(key)
'''


def test_context_mode_proposes_the_members_of_the_same_receiver(loaded: LoadedModel) -> None:
    text = _SERVICE + "\n    def put(self, key, value):\n        self.\n"
    cursor = _cursor_after(text, "value):\n        self.")
    context_only = InfillEngine(loaded, config=InfillConfig(precision="fp32", sources="context", min_probability=0))
    candidates = context_only.complete(text, cursor, language="python", k=10)
    by_text = {c.text: c for c in candidates}
    assert {"store", "hits"} <= set(by_text)
    assert by_text["store"].source == "member"
    assert all(c.text.isidentifier() for c in candidates)  # after "self." only names
    assert all(0.0 <= c.score <= 1.0 for c in candidates)


def test_repository_files_bring_their_members_and_say_so(loaded: LoadedModel) -> None:
    other = "from service import Service\ns = Service(db)\ns.store.flush_everything()\n"
    text = "def close(s):\n    s.store.\n"
    cursor = _cursor_after(text, "s.store.")
    engine = InfillEngine(loaded, config=InfillConfig(precision="fp32", min_probability=0), ranker=Ranker())
    alone = [c.text for c in engine.complete(text, cursor, language="python", k=10)]
    assert "flush_everything" not in alone
    with_repo = engine.complete(text, cursor, language="python", k=10, repository=[other])
    found = {c.text: c.source for c in with_repo}
    assert found.get("flush_everything") == "member"


def test_confidence_gate_returns_nothing_rather_than_noise(loaded: LoadedModel) -> None:
    strict = InfillEngine(loaded, config=InfillConfig(precision="fp32", min_probability=0.999))
    assert strict.complete(HOLED, _cursor_after(HOLED, "return "), language="python", k=5) == []
    with pytest.raises(Exception, match="sources"):
        InfillConfig(sources="everything")


def test_evidence_lists_every_candidate_with_its_features(engine: InfillEngine) -> None:
    cursor = _cursor_after(HOLED, "return ")
    rows = engine.evidence(HOLED, cursor, language="python")
    fills = {fill.strip(): e for fill, e in rows}
    assert "a - b" in fills and "analog" in fills["a - b"].sources  # the other return values
    assert any("model" in e.sources for e in fills.values())
    assert all(e.logp is None or e.logp <= 0.0 for e in fills.values())


def test_each_source_mode_ranks_with_the_weights_fitted_for_it(model_dir: Path, tmp_path: Path) -> None:
    import dataclasses

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "ranker.json").write_text(json.dumps({
        "weights": {"bias": -30.0},  # both/context: nothing passes the gate
        "modes": {"model": {"weights": {"bias": 30.0}}}}), encoding="utf-8")
    engine = InfillEngine(load_model_dir(copy), config=InfillConfig(precision="fp32"))
    cursor = _cursor_after(HOLED, "return ")
    assert engine.complete(HOLED, cursor, language="python") == []
    engine.config = dataclasses.replace(engine.config, sources="model")
    answers = engine.complete(HOLED, cursor, language="python")
    assert answers and all(c.source == "model" for c in answers)
    assert engine.ranker.weights == {"bias": 30.0}


def test_context_candidates_of_a_decoding_length_are_all_scored(loaded: LoadedModel) -> None:
    """A candidate as long as a row of the first forward is scored from that row: no forward of
    its own, so every such candidate gets the model's log-probability, not only the best few."""
    cursor = _cursor_after(HOLED, "return ")
    lengths = set(InfillConfig().line_lengths)
    tokenizer = loaded.tokenizer
    for every in (True, False):
        engine = InfillEngine(loaded, config=InfillConfig(precision="fp32", score_top=0, score_every_free=every))
        rows = engine.evidence(HOLED, cursor, language="python")
        free = [e for fill, e in rows if "model" not in e.sources
                and len(tokenizer.encode(" " + fill).ids) in lengths]
        assert free
        if every:
            assert all(e.logp is not None and e.logp <= 0.0 and e.n_tokens > 0 for e in free)
            assert all(e.logp_min is not None and e.logp_min <= e.logp for e in free)
        else:
            assert all(e.logp is None for e in free)
