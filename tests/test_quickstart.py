"""`codemlm quickstart`: the README's first command, on a fixture repository and a tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codemlm.cli import main
from tests._tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def test_quickstart_indexes_searches_and_completes(
    model_dir: Path, fixture_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo)
    code = main(
        [
            "quickstart", str(repo), "--model", str(model_dir), "--index-path", str(tmp_path / "index.sqlite"),
            "--query", "distance between two points", "--holes", "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1. the model" in out and "2. indexing" in out
    # A result row (path:line), not the echoed query: the fixture's distance() lives in shapes.py.
    assert "shapes.py:" in out
    assert "4. masked-span completion" in out and "original:" in out
    assert (tmp_path / "index.sqlite").is_file()


def test_quickstart_on_a_missing_path_is_one_clear_error(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["quickstart", str(tmp_path / "nope"), "--model", str(model_dir)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a directory" in err[0]
