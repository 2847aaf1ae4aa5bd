"""Code-aware reranking and identifier vocabulary: query kinds, file roles, definitions first."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemlm.identifiers import identifier_terms, spelled_out_words, split_glued
from codemlm.index import RepoIndex
from codemlm.ranking import NAME_COVER_BOOST, classify_query, file_role, name_cover, rerank_factor, stem
from codemlm.search import search


@pytest.mark.parametrize(
    ("query", "kind", "symbol"),
    [
        ("parseConfig", "symbol", "parseconfig"),
        ("max_retries", "symbol", "max_retries"),
        ("os.path.join", "symbol", "join"),
        ("Foo::bar()", "symbol", "bar"),
        ("slugify", "symbol", "slugify"),
        ("parse the config file", "words", None),
        ("how to retry?", "words", None),
    ],
)
def test_query_kinds(query: str, kind: str, symbol: str | None) -> None:
    parsed = classify_query(query)
    assert (parsed.kind, parsed.symbol) == (kind, symbol)


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("src/app/config.py", "source"),
        ("tests/test_config.py", "test"),
        ("pkg/config_test.go", "test"),
        ("src/Button.test.tsx", "test"),
        ("src/main/java/FooTest.java", "test"),
        ("types/index.d.ts", "mirror"),
        ("stubs/requests.pyi", "mirror"),
        ("dist/index.cjs", "mirror"),
        ("build/lib/pkg/config.py", "mirror"),
        ("api/service_pb2.py", "generated"),
        ("third_party/zlib/inflate.c", "vendored"),
        ("contest/latest.py", "source"),  # "test" inside a word is not a test
    ],
)
def test_file_roles(path: str, role: str) -> None:
    assert file_role(path) == role


def test_factors_put_definitions_and_sources_first() -> None:
    words = classify_query("load the settings")
    assert rerank_factor(words, "src/a.py", "function", "load_settings") > rerank_factor(words, "src/a.py", "block", "x = 1")
    assert rerank_factor(words, "src/a.py", "function", "f") > rerank_factor(words, "tests/test_a.py", "function", "f")
    assert rerank_factor(words, "src/a.ts", "function", "f") > rerank_factor(words, "types/a.d.ts", "function", "f")
    symbol = classify_query("loadSettings")
    assert rerank_factor(symbol, "src/a.py", "function", "loadSettings") > rerank_factor(symbol, "src/a.py", "function", "load")


def test_a_name_made_of_the_query_words_rises_with_the_share_it_covers() -> None:
    assert [stem(w) for w in ("returns", "returned", "returning", "classes", "is", "parse", "parsed")] == [
        "return", "return", "return", "class", "is", "pars", "pars"]
    words = classify_query("Return the parsed config files of a package.")
    assert name_cover(words.terms, "parse_config_file") == 1.0  # parsed/parse, files/file
    assert name_cover(words.terms, "getConfig") == 0.5
    assert name_cover(words.terms, "draw") == 0.0 and name_cover(words.terms, "__") == 0.0
    assert name_cover(classify_query("Return True if pen is down").terms, "isdown") == 1.0  # glued name
    assert name_cover(classify_query("encoding to get").terms, "getencoding") == 1.0  # in any order
    assert name_cover(classify_query("encoding to get").terms, "getencodings") == 0.0  # all of it, or nothing
    assert name_cover(classify_query("get the name").terms, "get_name_or_none") == 0.5
    full = rerank_factor(words, "src/a.py", "function", "parse_config_file")
    half = rerank_factor(words, "src/a.py", "method", "getConfig")
    assert full == pytest.approx(1 + NAME_COVER_BOOST) and half == pytest.approx(1 + NAME_COVER_BOOST / 2)
    assert rerank_factor(words, "src/a.py", "function", "draw") == 1.0
    # a name holding every query word and nothing else beats one holding only some of them
    exact = classify_query("parse config strict")
    assert rerank_factor(exact, "a.py", "function", "parse_config_strict") > rerank_factor(
        exact, "a.py", "function", "parse_config"
    )
    # the boost never lifts a test or a loose block above plain source
    assert rerank_factor(words, "tests/test_a.py", "function", "parse_config_file") < full
    assert rerank_factor(words, "src/a.py", "block", "parse_config_file") < 1.0


def test_split_glued_uses_the_given_vocabulary_only() -> None:
    vocabulary = spelled_out_words("def as_tuple(): pass\nx = dict_items\nplain_object = is_ok")
    assert {"as", "tuple", "dict", "items", "plain", "object", "is", "ok"} <= vocabulary
    assert split_glued("asdict", vocabulary) == ["as", "dict"]
    assert split_glued("isplainobject", vocabulary) == ["is", "plain", "object"]
    assert split_glued("asdict", frozenset({"dict"})) == []  # "as" unknown: no split
    assert split_glued("dict", vocabulary) == []  # too short, and a word already
    assert split_glued("tuple", vocabulary) == []
    assert identifier_terms("asdict") == ["asdict"]


def _repo(root: Path) -> Path:
    calls = "".join(f"    assert load_settings('settings_{i}.toml')\n" for i in range(6))
    files = {
        "src/settings.py": "def load_settings(path):\n    return parse_file(read_text(path), strict=True)\n",
        "src/app.py": "from settings import load_settings\n\n" + "".join(
            f"SETTINGS_{i} = load_settings('settings_{i}.toml')\n" for i in range(6)
        ),
        "tests/test_settings.py": f"def test_load_settings():\n{calls}",
        "types/settings.d.ts": "export declare function loadSettings(settings: string): string;\n",
        "src/settings.ts": "export function loadSettings(path: string): string {\n  return readText(path).trim();\n}\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_definition_beats_usages_tests_and_declaration_copies(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    with RepoIndex.open(repo, index_path=tmp_path / "i.sqlite") as index:
        index.update()
        top = search(index, "load_settings", k=3)
        assert (top[0].path, top[0].kind) == ("src/settings.py", "function")
        assert search(index, "load settings", k=2)[0].path in ("src/settings.py", "src/settings.ts")
        ts = search(index, "loadSettings", k=5, language="typescript")
        assert ts[0].path == "src/settings.ts"  # the implementation, not its .d.ts mirror
        raw = search(index, "load_settings", k=10, rerank=False)
        assert raw[0].path == "types/settings.d.ts"  # what BM25 alone puts first
        assert {r.path for r in raw} >= {"tests/test_settings.py", "src/app.py"}
        # --exclude: a folder name anywhere, or a glob over the path; everything excluded is empty
        assert all(not r.path.startswith("tests/") for r in search(index, "load settings", k=10, exclude=["tests"]))
        assert all(not r.path.endswith(".d.ts") for r in search(index, "load settings", k=10, exclude=["*.d.ts"]))
        assert search(index, "load settings", exclude=["*"]) == []
