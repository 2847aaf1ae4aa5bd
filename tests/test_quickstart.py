"""`codemlm quickstart`: the README's first command, on a fixture repository and a tiny model."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from codemlm.cli import main
from codemlm.cli.quickstart import TourQuery, path_hint, tour_queries
from codemlm.index import RepoIndex
from tests._tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def _quickstart(repo: Path, model_dir: Path, index: Path, *extra: str) -> int:
    return main(["quickstart", str(repo), "--model", str(model_dir), "--index-path", str(index), *extra])


def test_quickstart_indexes_searches_and_completes(
    model_dir: Path, fixture_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo)
    code = _quickstart(repo, model_dir, tmp_path / "index.sqlite", "--query", "distance between two points", "--holes", "2")
    out = capsys.readouterr().out
    assert code == 0
    assert "1. the model" in out and "2. indexing" in out
    # A result row (path:line), not the echoed query: the fixture's distance() lives in shapes.py.
    assert "shapes.py:" in out
    assert "4. masked-span completion" in out and "original:" in out
    # An honest count of the holes filled, both as first suggestion and among the five.
    assert re.search(r"filled correctly: \d of 2 holes as the first suggestion, \d of 2 among the first 5", out)
    assert (tmp_path / "index.sqlite").is_file()


def test_quickstart_takes_its_queries_from_the_repository(
    model_dir: Path, fixture_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo)
    code = _quickstart(repo, model_dir, tmp_path / "index.sqlite", "--holes", "0", "--queries", "3")
    out = capsys.readouterr().out
    assert code == 0
    # No query written for codemlm's own code: each names the definition of this repository it
    # was taken from, and the tour says how often that definition came up.
    assert "redact secrets" not in out and "reciprocal rank fusion" not in out
    assert len(re.findall(r"\(the (?:docstring|name) of \w+ in [\w/.-]+\)", out)) == 3, out
    found = re.search(r"in the first 3 results for (\d) of 3 queries", out)
    assert found, out
    # Docstring queries share their words with the definition: BM25 alone finds most of them.
    assert int(found.group(1)) >= 2, out
    # The closing hint is a search command for this repository, its index and its model, which
    # reuses the index just built (positional PATH, as `codemlm search QUERY [PATH]`).
    hint = re.search(r"codemlm search '.+' (\S+) --model (\S+) --index-path (\S+)", out)
    assert hint and hint.groups() == (str(repo), str(model_dir), str(tmp_path / "index.sqlite")), out


def test_tour_queries_come_from_docstrings_then_names() -> None:
    files = [
        ("a.py", "python", 'def _private():\n    """Hidden helper that is skipped here."""\n\n\n'
         'def area(r):\n    """Return the area of a circle. Uses pi."""\n    return 3.14 * r * r\n'),
        ("b.js", "javascript", "function parseConfigFile(text) {\n  return JSON.parse(text);\n}\n"),
        ("c.py", "python", "def f():\n    return 1\n"),  # nothing to ask about
    ]
    queries = tour_queries(files, 5, random.Random(0))
    assert sorted(queries, key=lambda q: q.path or "") == [
        TourQuery("Return the area of a circle", "docstring", "a.py", "area", 4),
        TourQuery("parse config file", "name", "b.js", "parseConfigFile", 0),
    ]
    # Docstring queries come first, and the count is respected.
    assert [q.origin for q in queries] == ["docstring", "name"]
    assert len(tour_queries(files, 1, random.Random(0))) == 1


def test_path_hint_is_the_exact_line_to_run(tmp_path: Path) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "codemlm").write_text("#!/bin/sh\n", encoding="utf-8")
    (venv_bin / "codemlm").chmod(0o755)
    # Already the `codemlm` the shell finds: nothing to say.
    assert path_hint(venv_bin, str(venv_bin)) is None
    # Not on PATH: the venv's activate script when there is one, else a PATH line.
    assert path_hint(venv_bin, "/usr/bin:/bin") == f"export PATH={venv_bin}:\"$PATH\""
    (venv_bin / "activate").write_text("# venv\n", encoding="utf-8")
    assert path_hint(venv_bin, "/usr/bin:/bin") == f"source {venv_bin / 'activate'}"


def test_ctrl_c_while_indexing_says_how_to_resume_and_resuming_works(
    model_dir: Path, fixture_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo)
    index = tmp_path / "index.sqlite"
    update = RepoIndex.update

    def interrupted_update(self: RepoIndex, progress: object = None, **kwargs: object) -> object:
        def ctrl_c_after_two_files(done: int, total: int, path: str = "") -> None:
            if done >= 2:
                raise KeyboardInterrupt

        return update(self, ctrl_c_after_two_files, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RepoIndex, "update", interrupted_update)
    assert _quickstart(repo, model_dir, index, "--holes", "0") == 130
    out = " ".join(capsys.readouterr().out.split())
    assert "interrupted while indexing" in out and "files indexed so far are kept" in out
    # The line to run again is the exact command, arguments included.
    assert re.search(rf"codemlm quickstart {re.escape(str(repo))} --model {re.escape(str(model_dir))}", out), out

    monkeypatch.setattr(RepoIndex, "update", update)
    assert _quickstart(repo, model_dir, index, "--holes", "0") == 0
    # The second run continued: what the first one committed was not indexed again.
    unchanged = re.search(r"(\d+) unchanged", capsys.readouterr().out)
    assert unchanged and int(unchanged.group(1)) >= 2


def test_quickstart_on_a_missing_path_is_one_clear_error(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["quickstart", str(tmp_path / "nope"), "--model", str(model_dir)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a directory" in err[0]
