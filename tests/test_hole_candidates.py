"""Context candidate sources on hand-made holes: names, members, syntax-role analogues,
continuations, statements, and the repository side (which never sees the holed file)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from codemlm.candidates import HoleContext, Repository, gather, sibling_texts
from codemlm.candidates.analogs import hole_roles
from codemlm.candidates.lexical import lex

CODE = '''import os


class Store:
    def __init__(self, root, mode="r"):
        self.root = root
        self.mode = mode
        self.cache = {}

    def path_of(self, name):
        return os.path.join(self.root, name)

    def load(self, name):
        if name in self.cache:
            return self.cache[name]
        with open(self.path_of(name), self.mode) as f:
            data = f.read()
        self.cache[name] = data
        return data

    def save(self, name, data):
        with open(self.path_of(name), "w") as f:
            f.write(data)
        self.cache[name] = data
'''


def _hole(code: str, marker: str, *, language: str = "python", repository: Repository | None = None,
          typed: str = "") -> tuple[HoleContext, dict[str, set[str]]]:
    """Cut ``marker``'s first occurrence out of ``code`` and gather proposals for the hole."""
    at = code.index(marker)
    context = HoleContext.build(code[:at], code[at + len(marker) :], language, single_line=True, typed=typed)
    return context, {p.text: p.sources for p in gather(context, repository)}


def test_lexer_keeps_newlines_drops_comments_and_spaces() -> None:
    toks = [t.text for t in lex("x = f(a, 'b#c')  # note\n\n\ny += 1\n", "python")]
    assert toks == ["x", "=", "f", "(", "a", ",", "'b#c'", ")", "\n", "y", "+=", "1", "\n"]
    js = [t.text for t in lex("const a = b // c\n/* d */ e?.f", "javascript")]
    assert js == ["const", "a", "=", "b", "\n", "e", "?.", "f"]


def test_members_after_the_same_receiver() -> None:
    context, found = _hole(CODE, "cache[name] = data\n        return data")
    assert context.after_dot
    assert "member" in found["cache"]
    assert "member" in found["root"] and "member" in found["path_of"]
    # After "self." only names are proposed.
    assert all(text.isidentifier() for text in found)


def test_call_arguments_come_from_other_calls_and_the_definition() -> None:
    # The hole is the argument list of the second self.path_of call (after "open(self.path_of").
    code = CODE.replace('open(self.path_of(name), "w")', 'open(self.path_of, "w")')
    at = code.index('self.path_of, "w"') + len("self.path_of")
    context = HoleContext.build(code[:at], code[at:], "python", single_line=True)
    assert hole_roles(context) == [("args", "path_of")]
    found = {p.text: p.sources for p in gather(context)}
    assert "analog" in found["(name)"]  # the other call and the parameters of def path_of


def test_values_given_to_the_same_name_and_return_values() -> None:
    _context, found = _hole(CODE, 'root\n        self.mode')
    assert "root" in found  # the name on the right of self.root = ...
    context, found = _hole(CODE, "os.path.join(self.root, name)")
    assert hole_roles(context) == [("return", "")]
    assert "analog" in found["self.cache[name]"] and "analog" in found["data"]


def test_a_return_hole_is_offered_the_usual_constants_of_its_language() -> None:
    _context, found = _hole(CODE, "os.path.join(self.root, name)")
    assert {"None", "True", "False", "self"} <= {t for t, s in found.items() if "role" in s}
    js = "function has(xs, x) {\n  for (const y of xs) {\n    if (y === x) return true;\n  }\n  return false;\n}\n"
    _context, found = _hole(js, "false;", language="javascript")
    assert "role" in found["false"] and "role" in found["null"] and "None" not in found
    _context, found = _hole(CODE, "root\n        self.mode")  # not a return: no constants
    assert "None" not in found


def test_continuations_end_at_the_right_anchor() -> None:
    code = "total = compute(a, b)\nprint(total)\ntotal = compute(a, b)\nshow(total)\n"
    at = code.rindex("compute(a, b)")
    context = HoleContext.build(code[:at], code[at + len("compute(a, b)") :], "python", single_line=True)
    proposals = {p.text: p for p in gather(context)}
    best = proposals["compute(a, b)"]
    assert "continuation" in best.sources
    assert best.left_match >= 2 and best.right_match >= 1


def test_statements_at_a_line_start() -> None:
    code = "def f(xs):\n    out = []\n    for x in xs:\n        out.append(x)\n    return out\n"
    at = code.index("return out")
    context = HoleContext.build(code[:at], code[at + len("return out") :], "python", single_line=True)
    found = {p.text: p.sources for p in gather(context)}
    assert "line" in found["return out"]
    assert "return xs" not in found  # xs is a parameter, not assigned above


def test_typed_prefix_filters_every_source() -> None:
    at = CODE.index("cache[name] = data\n        return data") + 2
    context = HoleContext.build(CODE[: at - 2], CODE[at:], "python", single_line=True, typed="ca")
    texts = [p.text for p in gather(context)]
    assert texts and all(t.startswith("ca") and t != "ca" for t in texts)


def test_repository_members_and_no_leak_of_the_holed_file(tmp_path: Path) -> None:
    other = "from store import Store\ns = Store('/tmp')\ns.flush_all()\n"
    repo = Repository([other], "python")
    code = "s = make()\ns.\n"
    at = code.index("s.\n") + 2
    context = HoleContext.build(code[:at], code[at:], "python", single_line=True)
    found = {p.text: p for p in gather(context, repo)}
    assert "member" in found["flush_all"].sources
    assert found["flush_all"].distance == float("inf")  # from another file
    # sibling_texts never returns the file itself.
    (tmp_path / "a.py").write_text("SECRET_ANSWER = 1\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("x = 2\n", encoding="utf-8")
    (tmp_path / "c.js").write_text("y = 3\n", encoding="utf-8")
    assert sibling_texts(tmp_path / "a.py") == ["x = 2\n"]


def test_unknown_language_and_empty_sides_give_candidates_or_nothing() -> None:
    context = HoleContext.build("", "", "cobol", single_line=True)
    assert gather(context) == []
    context = HoleContext.build("MOVE A TO B.\nMOVE ", " TO C.\n", "cobol", single_line=True)
    assert "A" in {p.text for p in gather(context)}


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ab_(). =,:\n'\"#\\", max_size=60), st.data())
def test_any_text_gives_single_line_proposals_without_raising(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(text)))
    language = data.draw(st.sampled_from(["python", "javascript", None]))
    context = HoleContext.build(text[:at], text[at:], language, single_line=True)
    for p in gather(context, Repository([text], language)):
        assert p.text == p.text.strip() and p.text and "\n" not in p.text


def test_a_repository_adds_its_commonest_names_not_all_of_them() -> None:
    many = "\n".join(f"name_{i} = {i}" for i in range(500)) + "\n" + "common = 1\n" * 50
    repo = Repository([many], "python")
    context = HoleContext.build("x = 1\ny = ", "\n", "python", single_line=True)
    texts = {p.text for p in gather(context, repo)}
    assert "common" in texts and "x" in texts
    assert sum(t.startswith("name_") for t in texts) < 40
    typed = HoleContext.build("x = 1\ny = ", "\n", "python", single_line=True, typed="name_49")
    assert "name_499" in {p.text for p in gather(typed, repo)}  # a typed prefix reaches every name


def test_a_definition_takes_the_parameters_its_calls_pass() -> None:
    code = "class Shop:\n    def total(self):\n        return self.price_of(item, tax=rate)\n\n    def price_of:\n        pass\n"
    at = code.index("def price_of") + len("def price_of")
    context = HoleContext.build(code[:at], code[at:], "python", single_line=True)
    assert hole_roles(context) == [("params", "price_of")]
    found = {p.text: p.sources for p in gather(context)}
    assert "analog" in found["(self, item, tax=None)"]  # the method call names its receiver
    assert "analog" in found["(self, item, tax=rate)"]
    assert "(self, self)" not in found and "(self, price_of)" not in found  # never the receiver twice


def test_data_model_methods_and_the_names_a_body_reads() -> None:
    code = "class Span:\n    def __eq__:\n        return True\n\n    def clip:\n        if low < 0:\n            low = 0\n" \
           "        return min(high, low)\n"
    at = code.index("def __eq__") + len("def __eq__")
    found = {p.text: p.sources for p in gather(HoleContext.build(code[:at], code[at:], "python", single_line=True))}
    assert "analog" in found["(self, other)"]
    at = code.index("def clip") + len("def clip")
    found = {p.text: p.sources for p in gather(HoleContext.build(code[:at], code[at:], "python", single_line=True))}
    # The body reads low, then high (min is a builtin and is called): the parameters in that order.
    assert "wrap" in found["(self, low, high)"] and "wrap" in found["(self, low)"]
    assert "(self, low, min)" not in found and "(self, high, low)" not in found


def test_definition_roles_after_a_spaced_function_name_and_a_class_name() -> None:
    js = HoleContext.build("function getCharset ", " {\n}\n", "javascript", single_line=True)
    assert hole_roles(js) == [("params", "getCharset")]
    py = HoleContext.build("class Lexer", ":\n    pass\n", "python", single_line=True)
    assert hole_roles(py) == [("bases", "")]
    call = HoleContext.build("x = f ", "\n", "python", single_line=True)
    assert hole_roles(call) == []  # a space after a callee is not a call's argument list


def test_an_arrow_functions_parameters_are_like_the_files_other_arrows() -> None:
    code = "const g = (a, b) => a + b;\nconst h = (value) => value;\nxs.map((x) => x * 2);\n"
    context, found = _hole(code, "(x)", language="javascript")
    assert hole_roles(context) == [("params", "=>")]
    assert "analog" in found["(value)"] and "analog" in found["(a, b)"]
