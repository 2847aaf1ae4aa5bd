"""The `codemlm index` / `codemlm search` command lines: never touching a file that is not
ours, repairing our own damage, and the conventions of grep-like tools."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_index import write_repo

from codemlm.cli import main


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEMLM_MODEL", str(tmp_path / "no-model"))  # lexical: fast, no torch
    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    return write_repo(tmp_path / "repo")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("codemlm: error:")]


# --------------------------------------------------------------------------- data loss
@pytest.mark.parametrize("command", ["index", "search"])
def test_an_index_path_that_is_a_source_file_is_refused_and_left_alone(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    victim = tmp_path / "ok.py"
    victim.write_text("def precious():\n    return 'do not lose me'\n")
    before = victim.read_bytes()
    argv = ["index", str(repo)] if command == "index" else ["search", "slugify", str(repo)]
    for extra in ([], ["--rebuild"]):
        assert main([*argv, "--index-path", str(victim), *extra]) == 1
        err = capsys.readouterr().err
        assert len(error_lines(err)) == 1 and "not a codemlm index" in err and "Traceback" not in err
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ok.py")) == ["ok.py"]


def test_a_fifo_index_path_is_refused_at_once(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "index.fifo"
    os.mkfifo(fifo)
    assert main(["index", str(repo), "--index-path", str(fifo)]) == 1
    assert "not a regular file" in capsys.readouterr().err


def test_the_cli_refusal_in_a_real_process(repo: Path, tmp_path: Path) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_bytes(b"SQLite format 3\x00 but really a text file " * 10)
    done = subprocess.run(
        [sys.executable, "-m", "codemlm", "index", str(repo), "--index-path", str(victim)],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert done.returncode == 1 and len(error_lines(done.stderr)) == 1, done.stderr
    assert victim.read_bytes() == b"SQLite format 3\x00 but really a text file " * 10


# --------------------------------------------------------------------------- our own damage
def test_index_detects_deep_damage_and_rebuilds(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index_path = tmp_path / "idx.sqlite"
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    with contextlib.closing(sqlite3.connect(index_path)) as conn:
        conn.execute("UPDATE chunks_fts_data SET block = zeroblob(length(block)) WHERE id > 10")
        conn.commit()
    capsys.readouterr()
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    captured = capsys.readouterr()
    assert "rebuilding the index" in captured.err and "damaged" in captured.err
    assert main(["search", "slugify", str(repo), "--index-path", str(index_path), "--vimgrep"]) == 0
    assert capsys.readouterr().out.startswith("pkg/text_utils.py:1:1: slugify")


def test_index_repairs_overwritten_pages(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(40):
        (repo / f"more/m{i}.py").parent.mkdir(exist_ok=True)
        (repo / f"more/m{i}.py").write_text(f"def helper_{i}(value):\n    return value + {i}\n" * 5)
    index_path = tmp_path / "idx.sqlite"
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    with contextlib.closing(sqlite3.connect(index_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(index_path.read_bytes())
    for start in range(2 * 4096, len(data) - 4096, 3 * 4096):  # every third page after the schema
        data[start : start + 4096] = b"\x5a" * 4096
    index_path.write_bytes(bytes(data))
    (repo / "pkg/text_utils.py").write_text("def slugify(title):\n    return title.lower()\n")  # an update to write
    capsys.readouterr()
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    captured = capsys.readouterr()
    assert "rebuilding the index" in captured.err and "Traceback" not in captured.err
    assert main(["search", "slugify", str(repo), "--index-path", str(index_path), "--vimgrep"]) == 0
    assert capsys.readouterr().out.startswith("pkg/text_utils.py:1:1: slugify")


def test_search_repairs_a_damaged_index_instead_of_a_traceback(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_path = tmp_path / "idx.sqlite"
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    with contextlib.closing(sqlite3.connect(index_path)) as conn:
        conn.execute("DROP TABLE chunks_fts_data")  # the full-text index's storage, gone
        conn.commit()
    capsys.readouterr()
    assert main(["search", "slugify", str(repo), "--index-path", str(index_path), "--vimgrep"]) == 0
    captured = capsys.readouterr()
    assert "rebuilding the index" in captured.err and "Traceback" not in captured.err
    assert "slugify" in captured.out


# --------------------------------------------------------------------------- conventions
def test_positional_path_vimgrep_files_and_exit_status(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "slugify", str(repo), "--vimgrep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pkg/text_utils.py:1:1: slugify"
    assert all(line.count(":") >= 3 for line in lines)
    assert main(["search", "slugify", "--repo", str(repo), "-l"]) == 0  # --repo still works
    paths = capsys.readouterr().out.splitlines()
    assert paths[0] == "pkg/text_utils.py" and len(paths) == len(set(paths))
    assert main(["search", "zzzqqq nothing like this", str(repo)]) == 1
    assert "no results" in capsys.readouterr().out
    assert main(["search", "slugify", str(repo), "--exclude", "pkg", "--vimgrep"]) in (0, 1)
    assert "pkg/" not in capsys.readouterr().out


def test_filters_that_leave_nothing_say_so(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "slugify", str(repo), "--exclude", "**"]) == 1
    captured = capsys.readouterr()
    assert "no results" in captured.out
    assert "--exclude '**' left out every match" in captured.err
    assert main(["search", "zzzqqq nothing like this", str(repo), "--exclude", "**"]) == 1
    assert "left out" not in capsys.readouterr().err  # the query itself matches nothing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["slugify", "--lang", "cobol"], "unsupported language 'cobol'"),
        (["slugify", "--lang", "Python"], "unsupported language 'Python'"),
        ([""], "the query is empty"),
        (["   "], "the query is empty"),
        (["(((!!!)))"], "nothing to search for"),
    ],
)
def test_bad_queries_are_errors(repo: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["search", *argv, str(repo)]) == 1  # options may sit between QUERY and PATH
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and message in err


def test_two_different_repositories_are_an_error(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "slugify", str(repo), "--repo", str(tmp_path)]) == 1
    assert "two repositories" in capsys.readouterr().err


def test_no_update_searches_without_writing(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index_path = tmp_path / "idx.sqlite"
    assert main(["index", str(repo), "--index-path", str(index_path)]) == 0
    with contextlib.closing(sqlite3.connect(index_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = index_path.read_bytes()
    (repo / "pkg/late.py").write_text("def late_arrival():\n    pass\n")
    capsys.readouterr()
    assert main(["search", "slugify", str(repo), "--index-path", str(index_path), "--no-update", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert payload["results"][0]["name"] == "slugify"
    assert main(["search", "late arrival", str(repo), "--index-path", str(index_path), "--no-update", "--vimgrep"]) == 1
    assert index_path.read_bytes() == before


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--vimgrep" in out and "exit status" in out


def test_progress_lines_on_stderr_when_piped(repo: Path, tmp_path: Path) -> None:
    for i in range(30):
        (repo / f"gen/m{i}.py").parent.mkdir(exist_ok=True)
        (repo / f"gen/m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    done = subprocess.run(
        [sys.executable, "-m", "codemlm", "index", str(repo), "--index-path", str(tmp_path / "i.sqlite")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("codemlm: ")]
    assert progress[0].startswith("codemlm: scanning") and any("indexing 33/33" in line for line in progress)


_NO_TORCH = """
import sys
from codemlm.embedder import LazyModelEmbedder
from codemlm.index import RepoIndex
from codemlm.search import search
embedder = LazyModelEmbedder({model!r})
with RepoIndex.open({repo!r}, index_path={index!r}, embedder=embedder) as index:
    index.update()
    hits = search(index, "slug from a title")
print(hits[0].name, "torch" in sys.modules, embedder.is_loaded)
"""


def test_the_shipped_model_never_loads_torch_to_search(repo: Path, tmp_path: Path) -> None:
    # Its dense side, if it has a vote, is the static table (codemlm.static_embedder): no torch.
    from codemlm.checkpoint import default_model_dir

    model = default_model_dir()
    if not (model / "config.json").is_file():
        pytest.skip("no shipped model in this checkout")
    script = _NO_TORCH.format(model=str(model), repo=str(repo), index=str(tmp_path / "i.sqlite"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["slugify", "False", "False"]
