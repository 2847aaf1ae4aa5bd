"""Composed candidates: argument lists, conditions and statements built from the file's atoms."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codemlm.candidates import HoleContext, gather
from codemlm.candidates.compose import atoms

CODE = '''import os


def read(path, mode):
    if os.path.exists(path):
        with open(path, 'rb') as f:
            data = f.read()
    return binascii.hexlify(data)
'''


def _found(code: str, at: int, end: int | None = None, language: str = "python") -> dict[str, set[str]]:
    context = HoleContext.build(code[:at], code[at if end is None else end :], language, single_line=True)
    return {p.text: p.sources for p in gather(context)}


def test_atoms_are_names_dotted_chains_and_short_literals_nearest_first() -> None:
    at = CODE.index("data = f.read()")
    context = HoleContext.build(CODE[:at], CODE[at:], "python", single_line=True)
    found = {text: kind for text, _distance, kind in atoms(context)}
    assert found["os.path.exists"] == "dotted" and found["path"] == "name" and found["'rb'"] == "literal"
    assert "def" not in found and "return" not in found
    distances = [d for _t, d, _k in atoms(context)]
    assert distances == sorted(distances)


def test_argument_lists_pair_nearby_names_and_wrap_literals() -> None:
    code = CODE.replace("open(path, 'rb')", "open(path, 'rb')\n        log(mode, path)\n        g")
    at = code.rindex("        g") + len("        g")
    found = _found(code, at)
    assert "compose" in found["('rb')"]
    assert "compose" in found["(mode, path)"] or "analog" in found["(mode, path)"]
    assert "compose" in found["(path, 'rb')"]


def test_conditions_test_the_nearest_names() -> None:
    code = "def f(node):\n    parent = node.parent\n    if parent is None:\n        return node\n"
    at = code.index("parent is None")
    found = _found(code, at, at + len("parent is None"))
    assert "compose" in found["parent is None"] and "compose" in found["not parent"]


def test_an_import_block_offers_the_modules_the_file_uses_but_does_not_import() -> None:
    at = CODE.index("import os") + len("import os\n")
    found = _found(CODE, at)
    assert "compose" in found["import binascii"]
    assert "import os" not in found or "compose" not in found["import os"]  # already imported
    assert "import path" not in found  # a parameter, not a module
    assert "compose" in found["return None"]


def test_javascript_keyword_statements_end_with_a_semicolon() -> None:
    code = "for (const x of xs) {\n  if (!x) {\n    \n  }\n}\n"
    at = code.index("    \n") + 4
    found = _found(code, at, language="javascript")
    assert "continue;" in found and "continue" not in found


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ab_().=,:'\"\n ifreturnimport", max_size=60), st.data())
def test_composed_candidates_are_single_line_and_never_raise(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(text)))
    language = data.draw(st.sampled_from(["python", "javascript", None]))
    context = HoleContext.build(text[:at], text[at:], language, single_line=True)
    for p in gather(context):
        assert p.text == p.text.strip() and p.text and "\n" not in p.text


def test_a_block_returns_what_it_built() -> None:
    code = ("def deco(f):\n    def wrapper(*a):\n        return f(*a)\n    \n\n"
            "def split(line):\n    key, rest = line.split(':')\n    fields = rest.split()\n    \n")
    found = _found(code, code.index("    \n\n") + 4)
    assert "compose" in found["return wrapper"]
    found = _found(code, code.rindex("    \n") + 4)
    assert "compose" in found["return key, fields"] or "compose" in found["return fields, key"]


def test_a_condition_compares_two_nearby_atoms() -> None:
    code = "def f(lo, hi):\n    span = hi - lo\n    if lo == hi:\n        return 0\n"
    at = code.index("lo == hi")
    found = _found(code, at, at + len("lo == hi"))
    assert "compose" in found["lo == hi"]


def test_another_call_to_the_callee_is_varied_in_one_argument() -> None:
    code = "def norm(lhs, rhs):\n    a = canonicalize_name(lhs)\n    return canonicalize_name|\n"
    found = _found(code.replace("|", ""), code.index("|"))
    assert "analog" in found["(lhs)"]
    assert "compose" in found["(rhs)"]  # (lhs) with its argument replaced by a nearby name
    code = "def g(lhs, rhs):\n    fmt(arg=lhs)\n    return fmt|\n"
    found = _found(code.replace("|", ""), code.index("|"))
    assert "compose" in found["(arg=rhs)"]  # a keyword argument keeps its keyword


def test_a_bound_name_is_the_string_other_calls_take() -> None:
    code = "var bytes = require('bytes')\nvar read = require('./read')\nvar parseUrl = require|\n"
    found = _found(code.replace("|", ""), code.index("|"), language="javascript")
    assert {"('parseUrl')", "('parseurl')", "('parse-url')", "('./parseurl')"} <= set(found)


def test_split_arguments_keeps_nested_brackets_and_strings_whole() -> None:
    from codemlm.candidates.variants import split_arguments

    assert split_arguments("(a, f(b, c), 'x, y', k=[1, 2])", "python") == ["a", "f(b, c)", "'x, y'", "k=[1, 2]"]
    assert split_arguments("()", "python") == [] and split_arguments("(a))", "python") == []


def test_a_class_base_is_a_capitalized_name_or_another_class_base() -> None:
    code = "from x import RegexLexer\n\n\nclass A(RegexLexer):\n    pass\n\n\nclass B|:\n    name = Token\n"
    found = _found(code.replace("|", ""), code.index("|"))
    assert "analog" in found["(RegexLexer)"] and "wrap" in found["(Token)"]
    assert "(B)" not in found


def test_bound_names_include_the_enclosing_function_parameters() -> None:
    context = HoleContext.build("def f(self, a: dict[str, int], *args, b=g(1, 2), **kw):\n    y = a\n    ", "",
                                "python", single_line=True)
    assert {"self", "a", "args", "b", "kw", "y"} <= context.bound_names()
    context = HoleContext.build("app.use(function (req, res) {\n  ", "", "javascript", single_line=True)
    assert {"req", "res"} <= context.bound_names()
