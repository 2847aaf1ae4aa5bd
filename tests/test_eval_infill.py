"""Infill evaluation: case validation, metrics on a hand-checked example, the `eval infill` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codemlm.cli import main
from codemlm.errors import EvaluationError, InputError
from codemlm.eval_infill import (
    edit_similarity,
    evaluate_infill,
    format_infill_report,
    levenshtein,
    load_infill_cases,
    percentile,
)
from codemlm.infill import Candidate
from tests._tiny_model import SNIPPET, tiny_model_dir


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def _write_cases(path: Path, cases: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


class ScriptedEngine:
    """A fake implementing InfillEngine.complete: answers are looked up by the case's prefix."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls = 0

    def complete(self, text: str, start_byte: int, end_byte: int | None = None, *,
                 language: str | None = None, k: int = 5) -> list[Candidate]:
        self.calls += 1
        prefix = text.encode()[:start_byte].decode()
        if prefix not in self.answers:
            raise InputError("no answer scripted")
        return [Candidate(t, -float(i), start_byte, start_byte, True) for i, t in enumerate(self.answers[prefix][:k])]


def test_levenshtein_and_edit_similarity_by_hand() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert edit_similarity("  a + b ", "a + b") == 1.0  # trimmed
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("", "xy") == 0.0


def test_percentile_interpolates() -> None:
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 95) == pytest.approx(10.5)


def test_metrics_on_a_hand_checked_example(tmp_path: Path) -> None:
    cases = _write_cases(tmp_path / "cases.jsonl", [
        # top-1 exact (after trimming)
        {"id": "a", "language": "python", "kind": "identifier", "prefix": "x = ", "suffix": "\n", "target": "foo"},
        # exact only at rank 2; top-1 "bar(" breaks the parse
        {"id": "b", "language": "python", "kind": "expression", "prefix": "y = f(", "suffix": ")\n",
         "target": "a + b"},
        # no exact match; top-1 "kitten" vs target "sitting": similarity 4/7
        {"id": "c", "language": "cobol", "kind": "identifier", "prefix": "z = ", "suffix": "\n",
         "target": "sitting"},
        # the engine rejects it: no candidates at all
        {"id": 4, "language": "python", "prefix": "w = ", "suffix": "\n", "target": "1"},
    ])
    engine = ScriptedEngine({"x = ": [" foo ", "bar"], "y = f(": ["bar(", "a + b"], "z = ": ["kitten"]})
    report = evaluate_infill(cases, engine=engine)  # type: ignore[arg-type]
    overall = report["overall"]
    assert overall["cases"] == 4
    assert overall["em_at_1"] == pytest.approx(1 / 4)
    assert overall["em_at_5"] == pytest.approx(2 / 4)
    assert overall["edit_similarity"] == pytest.approx((1.0 + (1 - 5 / 5) + 4 / 7 + 0.0) / 4)
    # Parse check: python cases only (3). "x = foo" parses, "y = f(bar()" has an error that
    # "y = f()" has not, "" (no candidate) leaves the hole as it was, which is "no worse".
    assert overall["parse_checked"] == 3
    assert overall["parses"] == pytest.approx(2 / 3)
    assert overall["no_candidates"] == 1
    assert report["by_kind"]["identifier"]["cases"] == 2
    assert report["by_kind"]["identifier"]["em_at_1"] == pytest.approx(0.5)
    assert report["by_kind"]["unlabeled"]["cases"] == 1
    assert report["by_language"]["cobol"]["parses"] is None
    assert report["by_language"]["python"]["em_at_5"] == pytest.approx(2 / 3)
    # Every case was timed: a fake answers instantly, so only the bounds are certain.
    assert 0.0 <= overall["latency_p50_ms"] <= overall["latency_p95_ms"] < 1000.0
    assert engine.calls == 5  # one warm-up plus one per case
    table = format_infill_report(report)
    assert "overall" in table and "kind: expression" in table and "language: cobol" in table


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "language": "python", "prefix": "x", "suffix": "", "target": "y"}', "{oops"],
         r"cases.jsonl:2: not valid JSON"),
        (['{"id": "a", "language": "python", "prefix": "x", "suffix": ""}'], r":1: missing field\(s\) target"),
        (['{"id": "a", "language": "python", "prefix": "x", "suffix": "", "target": "y", "answer": 1}'],
         r":1: unknown field\(s\) answer"),
        (['{"id": "a", "language": "python", "prefix": 3, "suffix": "", "target": "y"}'], "prefix must be a string"),
        (['{"id": "a", "language": "python", "prefix": "x", "suffix": "", "target": "  "}'], "target must not be empty"),
        (['{"id": "a", "language": "python", "prefix": "", "suffix": "", "target": "y"}'], "no context"),
        (['{"id": true, "language": "python", "prefix": "x", "suffix": "", "target": "y"}'], "id must be"),
        (['[1, 2]'], "must be a JSON object"),
        (['{"id": "a", "language": "python", "prefix": "x", "suffix": "", "target": "y"}', "",
          '{"id": "a", "language": "go", "prefix": "x", "suffix": "", "target": "y"}'],
         r":3: duplicate id 'a' \(first on line 1\)"),
        (["", "  "], "no cases"),
    ],
)
def test_malformed_case_files_raise_with_line_numbers(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match=message):
        load_infill_cases(path)


def test_missing_case_file(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="not found"):
        load_infill_cases(tmp_path / "none.jsonl")


def _snippet_cases(path: Path) -> Path:
    cut = SNIPPET.index("a + b")
    return _write_cases(path, [
        {"id": "add-body", "language": "python", "kind": "expression", "path": "ops.py",
         "prefix": SNIPPET[:cut], "suffix": SNIPPET[cut + 5 :], "target": "a + b"},
        {"id": "call", "language": "python", "kind": "identifier", "path": "ops.py",
         "prefix": SNIPPET[: SNIPPET.index("add(1")], "suffix": SNIPPET[SNIPPET.index("add(1") + 3 :],
         "target": "add"},
    ])


def _trusting_copy(model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model with a ranker.json that trusts its log-probability (it knows its file)."""
    copy = tmp_path / "trusting_model"
    shutil.copytree(model_dir, copy)
    (copy / "ranker.json").write_text(json.dumps({"weights": {"bias": -1.0, "logp": 2.0, "syntax_bad": -2.0}}),
                                      encoding="utf-8")
    return copy


def test_real_model_on_cases_it_has_learned(model_dir: Path, tmp_path: Path) -> None:
    trusting = _trusting_copy(model_dir, tmp_path)
    report = evaluate_infill(_snippet_cases(tmp_path / "cases.jsonl"), model_dir=trusting)
    assert report["overall"]["cases"] == 2
    assert report["overall"]["em_at_5"] == 1.0
    assert report["overall"]["parses"] == 1.0
    assert report["model"] == str(trusting)


def test_cli_eval_infill_json_is_the_last_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _snippet_cases(tmp_path / "cases.jsonl")
    assert main(["eval", "infill", str(cases), "--model", str(model_dir), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    assert report["task"] == "infill" and report["overall"]["cases"] == 2
    assert main(["eval", "infill", str(cases), "--model", str(model_dir), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "EM@1" in out and "kind: expression" in out


def test_cli_eval_infill_malformed_file_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    assert main(["eval", "infill", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.jsonl:1: missing field(s)" in err


def test_cli_eval_search_reports_a_bad_query_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Path(__file__).parent / "fixtures" / "multilang_repo"
    rc = main(["eval", "search", "--repo", str(repo), "--queries", str(tmp_path / "missing.jsonl"),
               "--mode", "lexical", "--index-path", str(tmp_path / "index.sqlite")])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("codemlm: error:")


def test_ablation_rows_and_top1_sources_in_one_run(model_dir: Path, tmp_path: Path) -> None:
    report = evaluate_infill(_snippet_cases(tmp_path / "cases.jsonl"), model_dir=model_dir,
                             modes=("both", "model", "context"))
    assert report["mode"] == "both"
    assert set(report["ablation"]) == {"both", "model", "context"}
    assert report["ablation"]["both"]["overall"] == report["overall"]
    assert sum(m["cases"] for m in report["by_source"].values()) == 2
    text = format_infill_report(report)
    assert "mode: context" in text and "top-1 source:" in text


def test_repository_mode_never_leaks_the_holed_file(model_dir: Path, tmp_path: Path) -> None:
    """The answer sits only in the case's own file and in a sibling; only the sibling may help."""
    repo = tmp_path / "pkg"
    repo.mkdir()
    own = "def handler(event):\n    result = dispatch_with_secret_token(event)\n    return result\n"
    (repo / "own.py").write_text(own, encoding="utf-8")
    cut = own.index("dispatch_with_secret_token")
    case = {"id": "leak", "language": "python", "kind": "identifier", "path": "pkg/own.py",
            "prefix": own[:cut], "suffix": own[cut + len("dispatch_with_secret_token") :],
            "target": "dispatch_with_secret_token"}
    cases = _write_cases(tmp_path / "cases.jsonl", [case])
    leak = evaluate_infill(cases, model_dir=model_dir, modes=("context",), repo_dir=repo)
    assert leak["overall"]["em_at_5"] == 0.0  # own.py is left out of its own repository
    (repo / "sibling.py").write_text("def other(event):\n    return dispatch_with_secret_token(event)\n",
                                     encoding="utf-8")
    helped = evaluate_infill(cases, model_dir=model_dir, modes=("context",), repo_dir=repo)
    assert helped["overall"]["em_at_5"] == 1.0
    assert helped["repository"] == str(repo)


def test_cli_eval_infill_ablation(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = _snippet_cases(tmp_path / "cases.jsonl")
    assert main(["eval", "infill", str(cases), "--model", str(model_dir), "--mode", "ablation", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["ablation"]) == {"both", "model", "context"}
