"""Search evaluation: metrics on a hand-checked example, and malformed case files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_index import HashingEmbedder

from codemlm.errors import EvaluationError
from codemlm.eval_search import evaluate_search, format_search_report, read_search_cases

SOURCE = '''def parse_config(path):
    return open(path).read()


def parse_config_strict(path):
    text = parse_config(path)
    return text


class Store:
    def save_record(self, record):
        return record
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text(SOURCE)
    return root


def write_cases(path: Path, cases: list[dict] | list[str]) -> Path:
    path.write_text("\n".join(c if isinstance(c, str) else json.dumps(c) for c in cases) + "\n")
    return path


def test_metrics_on_a_hand_checked_example(repo: Path, tmp_path: Path) -> None:
    cases = write_cases(
        tmp_path / "q.jsonl",
        [
            # BM25 ranks by hand: the strict variant matches every query term in its name -> 1
            {"id": "strict", "query": "parse config strict", "path": "a.py", "line": 5},
            # the plain parse_config matches only in name parts -> 2
            {"id": "plain", "query": "parse config strict", "path": "a.py", "line": 2},
            # a line inside the method: the answer is the method (innermost), not the class -> 1
            {"id": "method", "query": "save record", "path": "a.py", "line": 12, "language": "python"},
            # nothing matches -> a miss
            {"id": "miss", "query": "quantum entanglement", "path": "a.py", "line": 1},
        ],
    )
    report = evaluate_search(repo, cases, mode="lexical")
    assert [c["rank"] for c in report["per_case"]] == [1, 2, 1, None]
    assert report["mrr"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert report["recall_at_1"] == pytest.approx(0.5)
    assert report["recall_at_10"] == pytest.approx(0.75)
    assert report["mode"] == "lexical" and report["cases"] == 4
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] >= 0
    assert report["index_seconds"] > 0 and report["chunks"] == 4
    assert set(report["by_language"]) == {"python", "unknown"}
    text = format_search_report(report)
    assert "MRR@10     0.625" in text and "recall@10  0.750" in text


def test_hybrid_with_an_embedder(repo: Path, tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "q.jsonl", [{"id": 1, "query": "save a record", "path": "a.py", "line": 11}])
    report = evaluate_search(repo, cases, embedder=HashingEmbedder())
    assert report["mode"] == "hybrid" and report["model"] == "hashing-test"
    assert report["per_case"][0]["rank"] == 1
    json.dumps(report)  # --json must be able to print it


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "JSON object"),
        ('{"id": 2, "query": "q", "path": "a.py"}', "missing field(s) line"),
        ('{"id": 2, "query": "", "path": "a.py", "line": 1}', "non-empty string"),
        ('{"id": 2, "query": "q", "path": "a.py", "line": 0}', "1-based"),
        ('{"id": 2, "query": "q", "path": "a.py", "line": "3"}', "integer"),
        ('{"id": 2, "query": "q", "path": "a.py", "line": 1, "language": 5}', "'language'"),
    ],
)
def test_malformed_cases_name_their_line(tmp_path: Path, bad_line: str, message: str) -> None:
    good = json.dumps({"id": 1, "query": "q", "path": "a.py", "line": 1})
    path = write_cases(tmp_path / "q.jsonl", [good, "", bad_line])
    with pytest.raises(EvaluationError, match=rf"q\.jsonl:3: .*{message[:10]}"):
        read_search_cases(path)


def test_cases_without_an_answer_or_file_are_errors(repo: Path, tmp_path: Path) -> None:
    blank_line = write_cases(tmp_path / "q.jsonl", [{"id": "gap", "query": "q", "path": "a.py", "line": 3}])
    with pytest.raises(EvaluationError, match=r"case gap: no indexed definition in a\.py contains line 3"):
        evaluate_search(repo, blank_line, mode="lexical")
    with pytest.raises(EvaluationError, match="no search cases"):
        read_search_cases(write_cases(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(EvaluationError, match="cannot read"):
        read_search_cases(tmp_path / "missing.jsonl")
