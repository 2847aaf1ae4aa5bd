from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codemlm.errors import CodemlmError, InputError, UnsupportedLanguageError
from codemlm.kinds import SpanKind
from codemlm.languages import LANGUAGES, get_language, language_for_path, parser_for, supported_extensions

EXPECTED = {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"}


def test_table_has_every_language():
    assert set(LANGUAGES) == EXPECTED
    for name, lang in LANGUAGES.items():
        assert lang.name == name
        assert lang.extensions and all(ext.startswith(".") for ext in lang.extensions)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_named_node_type_exists_in_the_grammar(name):
    # A typo in the table would silently drop spans; the grammar is the authority.
    lang = get_language(name)
    grammar = lang.ts_language
    missing = sorted(t for t in lang.node_types() if not grammar.id_for_node_kind(t, True))
    assert missing == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_kind_class_is_mapped(name):
    kinds = set(get_language(name).node_kinds.values())
    assert kinds == set(SpanKind) - {SpanKind.NONE}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_definition_types_are_definition_spans(name):
    lang = get_language(name)
    for node_type in lang.definitions:
        if node_type not in lang.requires or not lang.requires[node_type][1]:
            assert lang.kind_of(node_type) is SpanKind.DEFINITION, node_type
        # else: JS `const f = () => ...`, `handler = () => ...` fields: definitions only when
        # the value is a function, so their span kind is the statement's or none.
    assert lang.kind_of("no_such_node") is SpanKind.NONE


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b/mod.py", "python"),
        ("stubs/mod.pyi", "python"),
        ("web/app.js", "javascript"),
        ("web/App.jsx", "javascript"),
        ("web/lib.mjs", "javascript"),
        ("web/api.ts", "typescript"),
        ("web/Button.tsx", "tsx"),
        ("server/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("Main.java", "java"),
        ("x.c", "c"),
        ("x.h", "c"),
        ("x.cpp", "cpp"),
        ("x.hpp", "cpp"),
        ("x.cc", "cpp"),
        ("SHOUTING.PY", "python"),
    ],
)
def test_language_for_path(path, expected):
    lang = language_for_path(path)
    assert lang is not None and lang.name == expected
    assert language_for_path(Path(path)) is lang


@pytest.mark.parametrize("path", ["README.md", "Makefile", "x.txt", "archive.tar.gz", ".gitignore", "py"])
def test_language_for_unsupported_path_is_none(path):
    assert language_for_path(path) is None


def test_extensions_belong_to_one_language():
    extensions = [ext for lang in LANGUAGES.values() for ext in lang.extensions]
    assert len(extensions) == len(set(extensions)) == len(supported_extensions())


def test_unknown_language_is_a_clear_library_error():
    with pytest.raises(UnsupportedLanguageError, match="cobol") as info:
        get_language("cobol")
    assert isinstance(info.value, InputError) and isinstance(info.value, CodemlmError)
    assert "python" in str(info.value)  # the message lists what is supported
    with pytest.raises(UnsupportedLanguageError):
        parser_for("cobol")


def test_parser_is_cached_per_thread_and_parses():
    first = parser_for("rust")
    assert parser_for("rust") is first
    assert parser_for("go") is not first
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(parser_for("rust")))
    thread.start()
    thread.join()
    assert other and other[0] is not first
    tree = first.parse(b"fn main() { let x = 1; }")
    assert tree.root_node.type == "source_file" and not tree.root_node.has_error


def test_fixture_repo_covers_every_language(fixture_repo):
    found = {lang.name for p in fixture_repo.rglob("*") if p.is_file() and (lang := language_for_path(p))}
    assert found == EXPECTED
