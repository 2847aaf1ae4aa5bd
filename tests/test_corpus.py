from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from codemlm.cli import main
from codemlm.config import CorpusConfig
from codemlm.corpus_build import build_corpus, split_of
from codemlm.corpus_stats import load_stats
from codemlm.errors import CorpusError, InputError
from codemlm.filters import SKIP_REASONS
from codemlm.secrets import redact_secrets
from codemlm.sources import CorpusStats, HFSource, iter_hf_dataset, iter_repository, stdlib_root
from codemlm.syntax import parse

KEPT = {
    "config/settings.py",
    "core/src/lib.rs",
    "java/src/main/java/com/example/Inventory.java",
    "legacy/shapes.py",
    "native/matrix.cpp",
    "native/ring_buffer.c",
    "native/ring_buffer.h",
    "scripts/keep.tmp.py",  # re-included by the nested .gitignore's `!keep.tmp.py`
    "scripts/word_count.py",
    "server/handler.go",
    "src/broken_draft.py",
    "src/geometry/__init__.py",
    "web/Button.tsx",
    "web/api.ts",
    "web/cart.js",
    "web/partial.js",
}
FIXTURE_COUNTS = {
    "gitignored": 3,  # scratch.tmp.py, local_notes/, web/bundle.out.js (nested .gitignore)
    "vendored": 1,  # node_modules/
    "generated": 1,  # server/types_gen.go
    "minified": 1,  # web/lib.min.js
    "binary": 1,  # native/core_dump.c
    "non_utf8": 1,  # src/latin1_notes.py
    "too_large": 0,
    "symlink_outside": 0,
    "duplicate": 1,  # src/geometry/shapes.py == legacy/shapes.py
    "unsupported": 5,  # README.md, Makefile, three .gitignore files
    "unreadable": 0,
    "empty": 0,
    "secrets_redacted": 5,
    "kept": 16,
}


def _walk(root: Path, config: CorpusConfig | None = None) -> tuple[dict[str, str], CorpusStats]:
    stats = CorpusStats()
    files = {f.path: f.text for f in iter_repository(root, config or CorpusConfig(), stats)}
    return files, stats


@pytest.fixture
def repo_copy(tmp_path: Path, fixture_repo: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(fixture_repo, target)
    return target


# --- walking and filters ------------------------------------------------------------------------


def test_fixture_walk_keeps_the_right_files_and_counts_every_filter(fixture_repo):
    files, stats = _walk(fixture_repo)
    assert set(files) == KEPT
    counts = stats.to_dict()["counts"]
    assert list(counts)[: len(SKIP_REASONS)] == list(SKIP_REASONS)
    assert {k: counts[k] for k in FIXTURE_COUNTS} == FIXTURE_COUNTS
    assert stats.languages["python"] == 6 and set(stats.languages) == {
        "python",
        "javascript",
        "typescript",
        "tsx",
        "go",
        "rust",
        "java",
        "c",
        "cpp",
    }


def test_walk_yields_repo_relative_posix_paths_in_order(fixture_repo):
    stats = CorpusStats()
    found = list(iter_repository(fixture_repo, CorpusConfig(), stats))
    assert [f.path for f in found] == sorted(f.path for f in found)
    assert {f.repo for f in found} == {"multilang_repo"}
    by_path = {f.path: f for f in found}
    assert by_path["web/Button.tsx"].language == "tsx" and by_path["native/ring_buffer.h"].language == "c"


def test_secrets_are_redacted_before_anything_is_kept(fixture_repo):
    files, _stats = _walk(fixture_repo)
    settings = files["config/settings.py"]
    for secret in (
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_EXAMPLE",
        "xoxb-000",
        "not-a-real-password",
        "MIIEow",
        "PRIVATE KEY",
    ):
        assert secret not in settings
    assert settings.count("<REDACTED>") == 5
    assert "TIMEOUT_SECONDS = 30" in settings and "def database_url" in settings  # the rest is intact


@pytest.mark.parametrize(
    "text",
    [
        'key = "AKIAIOSFODNN7EXAMPLE"',
        "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "SLACK = 'xoxp-1234567890-abcdefghij'",
        'db_password = "correct-horse-battery"',
        'config = {"apiKey": "sk-live-123456789"}',
        'secret := "abcdefgh12"',
        'api_key: str = "sk-longer-value"',
        'connect(password="hunter2hunter2")',
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----",
    ],
)
def test_redact_secrets_patterns(text):
    redacted, count = redact_secrets(text)
    assert count == 1 and "<REDACTED>" in redacted
    assert redact_secrets(redacted) == (redacted, 0)  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        'token_type = "identifier"',  # the name does not end in a secret word
        'if password == "abcdefghij": pass',  # a comparison, not an assignment
        'password = "short"',  # too short to be a credential
        'token = "Please enter your token"',  # a message, with spaces
        "AKIA_PREFIX = 'x'",
        "def get_token(self): return self._token",
        'if user_passwd:\n    selector = "%s://%s%s" % (a, b, c)',  # never across lines (urllib)
    ],
)
def test_redact_secrets_leaves_ordinary_code_alone(text):
    assert redact_secrets(text) == (text, 0)


def test_gitignore_dot_git_and_info_exclude(repo_copy):
    git = repo_copy / ".git"
    (git / "info").mkdir(parents=True)
    (git / "objects.py").write_text("x = 1\n")  # never walked
    (git / "info" / "exclude").write_text("web/api.ts\n")
    (repo_copy / "web" / "sub").mkdir()
    (repo_copy / "web" / "sub" / "bundle.out.js").write_text("var unique = 1;\n")  # nested rule, deeper path
    files, stats = _walk(repo_copy)
    assert "web/api.ts" not in files and not any(p.startswith(".git") for p in files)
    assert "web/sub/bundle.out.js" not in files
    assert stats.counts["gitignored"] == FIXTURE_COUNTS["gitignored"] + 2


def test_dot_ignore_files_skip_paths_and_win_over_gitignore(repo_copy):
    (repo_copy / "fixtures_gen").mkdir()
    (repo_copy / "fixtures_gen" / "big_table.py").write_text("TABLE = [1, 2, 3]\n")
    (repo_copy / "keep_me.py").write_text("x = 1\n")
    (repo_copy / ".gitignore").write_text((repo_copy / ".gitignore").read_text() + "keep_me.py\n")
    (repo_copy / ".ignore").write_text("fixtures_gen/\n!keep_me.py\n")
    files, _ = _walk(repo_copy)
    assert not any(p.startswith("fixtures_gen/") for p in files)
    assert "keep_me.py" in files  # .ignore's re-include beats .gitignore in the same directory


def test_vendored_directories_are_skipped(repo_copy):
    for name in ("vendor", "third_party", "site-packages", ".venv", "venv", "__pycache__", "dist", "build"):
        (repo_copy / "src" / name).mkdir()
        (repo_copy / "src" / name / "dep.py").write_text(f"NAME = {name!r}\n")
    files, stats = _walk(repo_copy)
    assert not any("dep.py" in p for p in files)
    assert stats.counts["vendored"] == 1 + 8


def test_symlinks(repo_copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.py").write_text("ELSEWHERE = True\n")
    os.symlink(outside / "elsewhere.py", repo_copy / "src" / "link_out.py")
    os.symlink(outside, repo_copy / "src" / "dir_out")
    # Links inside the root are duplicates: their targets are walked at their real place.
    os.symlink(repo_copy / "web" / "cart.js", repo_copy / "src" / "link_in.js")
    os.symlink(repo_copy / "web", repo_copy / "src" / "dir_in")
    os.symlink(repo_copy / "missing.py", repo_copy / "src" / "dangling.py")
    os.mkfifo(repo_copy / "src" / "pipe.py")  # reading it would block the walk forever
    files, stats = _walk(repo_copy)
    assert stats.counts["symlink_outside"] == 2
    assert "src/link_out.py" not in files and not any(p.startswith("src/dir_") for p in files)
    assert stats.counts["unreadable"] == 2  # the dangling link and the FIFO: counted, never a crash
    assert stats.counts["duplicate"] == FIXTURE_COUNTS["duplicate"] + 2
    assert set(files) == KEPT


def test_size_limit_and_language_filter(fixture_repo):
    files, stats = _walk(fixture_repo, CorpusConfig(max_file_bytes=1000))
    assert stats.counts["too_large"] >= 5
    assert "core/src/lib.rs" not in files and "src/geometry/__init__.py" in files
    files, stats = _walk(fixture_repo, CorpusConfig(languages=("go", "rust")))
    assert set(files) == {"server/handler.go", "core/src/lib.rs"}


def test_generated_and_minified_detection(tmp_path):
    root = tmp_path / "gen"
    root.mkdir()
    (root / "a.py").write_text("# -*- coding: utf-8 -*-\n# @generated by tool\nx = 1\n")
    (root / "b.ts").write_text(
        "/* eslint-disable */\n// This file was automatically generated.\nlet b = 2;\n"
    )
    (root / "c.js").write_text("var " + ",".join(f"v{i}=1" for i in range(300)) + ";\n")  # one long line
    (root / "d.js").write_text("x=1;" * 200 + "\n" + "y=2;" * 10)  # short lines, but no whitespace at all
    (root / "empty.py").write_text("\n  \n")
    (root / "e.py").write_text(
        '"""Talks about generated code in line 8."""\n' + "\n" * 6 + "# generated by hand\n"
    )
    files, stats = _walk(root)
    assert stats.counts["generated"] == 2 and stats.counts["minified"] == 2 and stats.counts["empty"] == 1
    assert set(files) == {"e.py"}  # the words only count in the first lines


def test_single_file_source_and_missing_source(fixture_repo):
    files, _stats = _walk(fixture_repo / "web" / "cart.js")
    assert set(files) == {"cart.js"}
    with pytest.raises(InputError, match="not found"):
        list(iter_repository(fixture_repo / "no_such_dir", CorpusConfig(), CorpusStats()))


def test_stdlib_root_is_the_running_interpreters():
    root = stdlib_root()
    assert (root / "os.py").is_file() and (root / "json" / "__init__.py").is_file()
    files, stats = _walk(root / "json")
    assert "decoder.py" in files and stats.counts["kept"] >= 4


# --- split --------------------------------------------------------------------------------------


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    keys = [f"repo/file_{i}.py" for i in range(400)]
    first = [split_of(k, 0, 0.2) for k in keys]
    assert first == [split_of(k, 0, 0.2) for k in keys]
    other = [split_of(k, 1, 0.2) for k in keys]
    assert first != other
    assert 40 <= first.count("validation") <= 120
    assert all(split_of(k, 0, 0.0) == "train" for k in keys)


# --- build_corpus -------------------------------------------------------------------------------


def _paths(out: Path) -> dict[str, list[str]]:
    from datasets import load_from_disk

    files = load_from_disk(str(out / "files"))
    return {name: sorted(files[name]["path"]) for name in files}


def test_build_corpus_writes_the_schema_and_loads_back(fixture_repo, tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "data"
    stats = build_corpus([fixture_repo], out, CorpusConfig(validation_fraction=0.25), progress=False)
    files = load_from_disk(str(out / "files"))
    assert set(files) == {"train", "validation"}
    expected = {
        "repo": "string",
        "path": "string",
        "language": "string",
        "text": "string",
        "span_start": "int32",
        "span_end": "int32",
        "span_kind": "int8",
        "boundaries": "int32",
    }
    for split in files.values():
        assert split.column_names == list(expected)
        for name, dtype in expected.items():
            feature = split.features[name]
            assert (feature.dtype if dtype == "string" else feature.feature.dtype) == dtype
    rows = [row for split in files.values() for row in split]
    assert {row["path"] for row in rows} == KEPT
    assert len(files["validation"]) >= 1 and len(files["train"]) >= 1
    for row in rows:
        parsed = parse(row["text"], row["language"])
        assert row["span_start"] == [s.start for s in parsed.spans]
        assert row["span_end"] == [s.end for s in parsed.spans]
        assert row["span_kind"] == [int(s.kind) for s in parsed.spans]
        assert row["boundaries"] == parsed.boundaries
        assert max(row["span_end"]) <= len(row["text"].encode("utf-8"))
    data = json.loads((out / "stats.json").read_text())
    assert data == load_stats(out)
    assert data["counts"]["kept"] == 16 and data["counts"]["parse_errors"] == 2
    assert data["files"] == {"train": len(files["train"]), "validation": len(files["validation"])}
    assert sum(data["bytes"].values()) == data["bytes_kept"] == sum(len(r["text"].encode()) for r in rows)
    assert data["config"]["validation_fraction"] == 0.25
    assert stats.counts["kept"] == 16
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]  # no leftovers


def test_build_split_is_stable_and_seeded(fixture_repo, tmp_path):
    config = CorpusConfig(validation_fraction=0.3, seed=7)
    build_corpus([fixture_repo], tmp_path / "a", config, progress=False)
    build_corpus([fixture_repo], tmp_path / "b", config, progress=False)
    assert _paths(tmp_path / "a") == _paths(tmp_path / "b")
    build_corpus(
        [fixture_repo], tmp_path / "c", CorpusConfig(validation_fraction=0.3, seed=8), progress=False
    )
    assert _paths(tmp_path / "a") != _paths(tmp_path / "c")
    # Rebuilding into the same directory replaces the corpus.
    build_corpus(
        [fixture_repo], tmp_path / "a", CorpusConfig(validation_fraction=0.3, seed=8), progress=False
    )
    assert _paths(tmp_path / "a") == _paths(tmp_path / "c")


def test_split_by_repo_keeps_a_repository_together(fixture_repo, tmp_path):
    other = tmp_path / "other_repo"
    other.mkdir()
    (other / "util.py").write_text("def double(x):\n    return 2 * x\n")
    (other / "more.go").write_text("package more\n\nfunc Triple(x int) int { return 3 * x }\n")
    build_corpus(
        [fixture_repo, other],
        tmp_path / "data",
        CorpusConfig(validation_fraction=0.5, split_by="repo"),
        progress=False,
    )
    from datasets import load_from_disk

    files = load_from_disk(str(tmp_path / "data" / "files"))
    repos = {name: set(split["repo"]) for name, split in files.items()}
    assert repos["train"] and repos["validation"] and not repos["train"] & repos["validation"]


def test_build_with_parallel_workers_matches_one_worker(fixture_repo, tmp_path):
    build_corpus([fixture_repo], tmp_path / "one", CorpusConfig(validation_fraction=0.2), progress=False)
    build_corpus(
        [fixture_repo], tmp_path / "two", CorpusConfig(validation_fraction=0.2), num_proc=2, progress=False
    )
    from datasets import load_from_disk

    one, two = (
        load_from_disk(str(tmp_path / "one" / "files")),
        load_from_disk(str(tmp_path / "two" / "files")),
    )
    for split in ("train", "validation"):
        assert one[split].to_list() == two[split].to_list()


def test_build_errors_are_clear(fixture_repo, tmp_path):
    with pytest.raises(InputError, match="no_such_repo"):
        build_corpus([fixture_repo, tmp_path / "no_such_repo"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # checked before any work
    with pytest.raises(InputError, match="int32"):
        build_corpus([fixture_repo], tmp_path / "out", CorpusConfig(max_file_bytes=2**31), progress=False)
    with pytest.raises(CorpusError, match="no sources"):
        build_corpus([], tmp_path / "out", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to learn here\n")
    with pytest.raises(CorpusError, match="unsupported 1"):
        build_corpus([empty], tmp_path / "out", progress=False)
    (tmp_path / "taken" / "files").mkdir(parents=True)
    (tmp_path / "taken" / "files" / "precious.txt").write_text("user data")
    with pytest.raises(InputError, match="not a corpus"):
        build_corpus([fixture_repo], tmp_path / "taken", progress=False)
    assert (tmp_path / "taken" / "files" / "precious.txt").exists()
    with pytest.raises(InputError, match=r"no stats\.json"):
        load_stats(tmp_path / "empty")


# --- Hugging Face datasets ----------------------------------------------------------------------


def _dataset_rows(fixture_repo: Path) -> dict[str, list]:
    return {
        "content": [
            "def add(a, b):\n    return a + b\n",
            "def add(a, b):\n    return a + b\n",  # duplicate
            "int main(void) { return 0; }\n",
            "fn main() {}\n",
            'AWS = "AKIAIOSFODNN7EXAMPLE"\n',
            "binary\x00blob",
            "# just markdown\n",
            (fixture_repo / "server" / "handler.go").read_text(),  # also in the repository
        ],
        "path": ["a/add.py", "b/add.py", "main.c", "main.rs", "cfg.py", "blob.py", "README.md", "handler.go"],
        "lang": ["Python", "Python", "C", "Rust", "Python", "Python", "Markdown", "Go"],
    }


def test_iter_hf_dataset_from_a_local_json_dataset(fixture_repo, tmp_path):
    from datasets import Dataset

    data_file = tmp_path / "rows.jsonl"
    Dataset.from_dict(_dataset_rows(fixture_repo)).to_json(str(data_file))
    stats = CorpusStats()
    files = list(iter_hf_dataset(str(data_file), "content", path_column="path", stats=stats))
    assert [f.path for f in files] == ["a/add.py", "main.c", "main.rs", "cfg.py", "handler.go"]
    assert {f.path: f.language for f in files}["main.rs"] == "rust"
    assert "AKIA" not in files[3].text and stats.counts["secrets_redacted"] == 1
    assert (stats.counts["duplicate"], stats.counts["binary"], stats.counts["unsupported"]) == (1, 1, 1)
    # The language column decides when given ("Markdown" is not a supported language).
    by_column = list(iter_hf_dataset(str(data_file), "content", language_column="lang", limit=4))
    assert [f.language for f in by_column] == ["python", "c", "rust"]
    assert by_column[0].path == "train/0.py"  # no path column: a stable made-up path
    assert {f.repo for f in by_column} == {"rows.jsonl"}
    by_repo = list(
        iter_hf_dataset(str(data_file), "content", path_column="path", repo_column="path", limit=3)
    )
    assert [f.repo for f in by_repo] == ["a/add.py", "main.c"]


def test_iter_hf_dataset_from_save_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {"code": ["package main\n\nfunc main() {}\n", "const x = 1;\n"], "id": [1, 2]}
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    files = list(iter_hf_dataset(str(tmp_path / "dd"), "code", language="go"))
    assert [f.language for f in files] == ["go", "go"] and files[0].repo == "dd"
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "single"))
    assert (
        len(list(iter_hf_dataset(str(tmp_path / "single"), "code", language="javascript", streaming=False)))
        == 2
    )
    with pytest.raises(CorpusError, match="no column 'text'"):
        list(iter_hf_dataset(str(tmp_path / "dd"), "text", language="go"))
    with pytest.raises(CorpusError, match="no split 'validation'"):
        list(iter_hf_dataset(str(tmp_path / "dd"), "code", split="validation"))
    with pytest.raises(CorpusError, match="could not load"):
        list(iter_hf_dataset(str(tmp_path / "nowhere" / "x"), "code"))


def test_build_corpus_from_repository_and_dataset_dedupes_across_sources(fixture_repo, tmp_path):
    from datasets import Dataset, load_from_disk

    data_file = tmp_path / "rows.jsonl"
    Dataset.from_dict(_dataset_rows(fixture_repo)).to_json(str(data_file))
    stats = build_corpus(
        [fixture_repo],
        tmp_path / "data",
        CorpusConfig(validation_fraction=0.1),
        hf=HFSource(name=str(data_file), text_column="content", path_column="path"),
        progress=False,
    )
    assert stats.counts["kept"] == 16 + 4  # handler.go from the dataset is a duplicate
    assert stats.counts["duplicate"] == 1 + 2
    files = load_from_disk(str(tmp_path / "data" / "files"))
    repos = {repo for split in files.values() for repo in split["repo"]}
    assert repos == {"multilang_repo", "rows.jsonl"}


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_build_without_tokenizing_and_stats(fixture_repo, tmp_path, capsys):
    out = tmp_path / "data"
    code = main(
        ["corpus", "build", str(fixture_repo), "--out", str(out), "--no-tokenize", "--quiet", "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["counts"]["kept"] == 16
    assert (out / "files" / "dataset_dict.json").exists() and not (out / "tokens").exists()
    assert main(["corpus", "stats", str(out)]) == 0
    table = capsys.readouterr().out
    assert "kept" in table and "secrets redacted" in table
    assert main(["corpus", "stats", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["duplicate"] == 1


def test_cli_build_makes_the_whole_data_directory(fixture_repo, tmp_path, capsys):
    from datasets import load_from_disk

    from codemlm.tokenizer import CodeTokenizer

    out = tmp_path / "data"
    args = ["corpus", "build", str(fixture_repo), "--out", str(out), "--vocab-size", "400", "--seq-len", "64"]
    assert main([*args, "--quiet", "--validation-fraction", "0.2"]) == 0
    tokenizer = CodeTokenizer.from_file(out / "tokenizer.json")
    tokens = load_from_disk(str(out / "tokens"))
    assert set(tokens) == {"train", "validation"} and len(tokens["train"]) > 0
    assert all(len(ids) <= 64 for ids in tokens["train"]["input_ids"])
    data = load_stats(out)
    assert data["tokens"]["splits"]["train"]["windows"] == len(tokens["train"])
    assert data["tokenizer"]["vocab_size"] == tokenizer.vocab_size
    # A given tokenizer is copied, not retrained.
    again = tmp_path / "again"
    assert (
        main(
            [
                "corpus",
                "build",
                str(fixture_repo),
                "--out",
                str(again),
                "--quiet",
                "--tokenizer",
                str(out / "tokenizer.json"),
                "--seq-len",
                "64",
            ]
        )
        == 0
    )
    assert (again / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()
    capsys.readouterr()
    assert main(["corpus", "stats", str(out)]) == 0
    assert "train windows (tokens)" in capsys.readouterr().out


def test_cli_errors_are_one_line(fixture_repo, tmp_path, capsys):
    assert main(["corpus", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codemlm: error: source path not found") and "Traceback" not in err
    assert main(["corpus", "stats", str(tmp_path)]) == 1
    assert "no stats.json" in capsys.readouterr().err
    assert (
        main(["corpus", "build", str(fixture_repo), "--out", str(tmp_path / "o"), "--languages", "cobol"])
        == 1
    )
    assert "unsupported language" in capsys.readouterr().err


def test_cli_build_from_a_dataset_file(fixture_repo, tmp_path, capsys):
    from datasets import Dataset

    data_file = tmp_path / "rows.jsonl"
    Dataset.from_dict(_dataset_rows(fixture_repo)).to_json(str(data_file))
    out = tmp_path / "data"
    args = ["corpus", "build", "--hf-dataset", str(data_file), "--text-column", "content"]
    args += ["--language-column", "lang", "--out", str(out), "--no-tokenize", "--quiet", "--json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["counts"]["kept"] == 5 and printed["sources"] == [f"hf:{data_file}"]
    assert printed["languages"] == {"c": 1, "go": 1, "python": 2, "rust": 1}


@pytest.mark.slow
def test_cli_build_defaults_to_the_stdlib(tmp_path, capsys):
    out = tmp_path / "stdlib"
    assert main(["corpus", "build", "--out", str(out), "--no-tokenize", "--quiet", "--num-proc", "2"]) == 0
    data = load_stats(out)
    assert data["sources"] == [str(stdlib_root())]
    assert data["counts"]["kept"] > 1000 and data["counts"]["vendored"] > 0
    assert data["languages"]["python"] > 1000
    assert data["files"]["validation"] > 0


def test_build_without_validation_writes_an_empty_loadable_split(fixture_repo, tmp_path):
    import datasets

    build_corpus([fixture_repo], tmp_path / "c", CorpusConfig(validation_fraction=0.0), progress=False)
    files = datasets.load_from_disk(str(tmp_path / "c" / "files"))
    assert len(files["validation"]) == 0
    assert len(files["train"]) > 0
    assert files["validation"].column_names == files["train"].column_names


# --- the one pipeline ----------------------------------------------------------------------------


def test_build_corpus_runs_the_whole_pipeline_and_writes_stats_once(fixture_repo, tmp_path):
    from datasets import load_from_disk

    from codemlm.config import ChunkingConfig

    out = tmp_path / "data"
    stats = build_corpus(
        [fixture_repo],
        out,
        CorpusConfig(validation_fraction=0.2),
        progress=False,
        chunking=ChunkingConfig(seq_len=64),
        vocab_size=400,
        extra_stats={"note": "from the test"},
    )
    data = stats.to_dict()
    assert load_stats(out) == data  # what the caller gets is what was written
    keys = list(data)
    assert keys[-4:] == ["config", "tokens", "tokenizer", "note"]
    tokens = load_from_disk(str(out / "tokens"))
    assert data["tokens"]["splits"]["train"]["windows"] == len(tokens["train"]) > 0
    assert data["tokenizer"] == {"path": "tokenizer.json", "vocab_size": 400}
    assert (out / "tokenizer.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith((".staging", ".tokens-staging", "stats.json."))]


def test_build_corpus_checks_the_tokenizer_before_any_work(fixture_repo, tmp_path):
    from codemlm.config import ChunkingConfig

    with pytest.raises(InputError, match="tokenizer file not found"):
        build_corpus(
            [fixture_repo],
            tmp_path / "out",
            chunking=ChunkingConfig(seq_len=64),
            tokenizer=tmp_path / "missing.json",
            progress=False,
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_trainings_first_run_corpus_uses_the_same_pipeline(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from training.data import ensure_stdlib_data

    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    config = SimpleNamespace(stdlib_max_files=12, stdlib_seq_len=64, stdlib_vocab_size=400)
    data_dir = ensure_stdlib_data(config)
    data = load_stats(data_dir)
    assert list(data)[-4:] == ["config", "tokens", "tokenizer", "stdlib_files"]
    assert data["stdlib_files"] == 12 and data["tokens"]["splits"]["train"]["windows"] > 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["files", "stats.json", "tokenizer.json", "tokens"]
    assert ensure_stdlib_data(config) == data_dir  # built once, then found
