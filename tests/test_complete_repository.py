"""The repository side of completion comes from the index `codemlm index` built, never the holed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_index import write_repo

from codemlm.cli import main
from codemlm.index import RepoIndex, default_index_path, index_covering


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    root = write_repo(tmp_path / "repo")
    with RepoIndex.open(root) as index:
        index.update()
    return root


def test_file_texts_are_the_other_files_of_the_language_outermost_chunks_once(repo: Path) -> None:
    with RepoIndex.open(repo, read_only=True) as index:
        texts = index.file_texts("python", exclude="pkg/text_utils.py")
        everything = index.file_texts(None)
    assert len(texts) == 1
    geometry = texts[0]
    assert "def circle_area" in geometry and "class Rectangle" in geometry
    assert geometry.count("def area(self)") == 1  # the method is inside its class, not repeated
    assert "slugify" not in geometry  # the excluded file
    assert any("fetchJson" in t for t in everything) and any("slugify" in t for t in everything)
    with RepoIndex.open(repo, read_only=True) as index:
        assert index.file_texts("python", max_chars=1) == texts[:1]  # stops once the budget is spent


def test_index_covering_finds_the_repository_of_a_nested_file(repo: Path, tmp_path: Path) -> None:
    assert index_covering(repo / "pkg" / "geometry.py") == (repo.resolve(), default_index_path(repo))
    assert index_covering(repo) == (repo.resolve(), default_index_path(repo))
    (tmp_path / "elsewhere").mkdir()
    assert index_covering(tmp_path / "elsewhere" / "x.py") is None


def completion_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["complete", *argv, "--json", "--threads", "1"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_complete_reads_the_index_when_there_is_one_else_the_neighbours(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = repo / "pkg" / "text_utils.py"
    assert completion_json([str(target), "--line", "3", "--column", "12"], capsys)["repository"] == "index"
    assert completion_json([str(target), "--line", "3", "--column", "12", "--no-siblings"], capsys)["repository"] is None
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.py").write_text("def f(x):\n    return x\n", encoding="utf-8")
    assert completion_json([str(loose / "a.py"), "--line", "2", "--column", "12"], capsys)["repository"] == "siblings"
    # A damaged index is passed over for the neighbours, and left as it was.
    default_index_path(repo).write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    before = default_index_path(repo).read_bytes()
    assert completion_json([str(target), "--line", "3", "--column", "12"], capsys)["repository"] == "siblings"
    assert default_index_path(repo).read_bytes() == before


def test_complete_refuses_a_fifo_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    assert main(["complete", str(fifo), "--line", "1", "--column", "1"]) == 1
    assert "not a regular file" in capsys.readouterr().err
