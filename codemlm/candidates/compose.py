"""Composed candidates: short spans built from the file's own atoms where no occurrence exists.

Half of the argument lists, most conditions and many statements never occur verbatim in the
file, but they are made of pieces that do: ``('/')`` wraps a string literal of the file,
``(type, ext)`` two names used nearby, ``name is None`` a name and a common test,
``import binascii`` a module the file uses as ``binascii.`` but does not import in view. Each
piece is an *atom* (a name, a dotted chain, a short string or number literal) with its distance
to the hole; only the nearest few are combined, so the set stays small and the ranker and the
model judge them like any other candidate (source ``compose``).
"""

from __future__ import annotations

import re

from codemlm.candidates.context import Doc, HoleContext, ProposalSet
from codemlm.candidates.lexical import is_name

__all__ = ["atoms", "composed"]

_RECENT_CHARS = 3_000

_NEAREST_PAIRS = 6  # atoms combined two at a time: 6 give 30 ordered pairs
_NEAREST_SECOND = 4  # literals tried after one of those ("(mode, 'rb')", "(freq, 0)")
_NEAREST_TESTS = 8  # names tried in a condition
_NEAREST_LITERALS = 12  # string / number literals wrapped as one argument
_MAX_LITERAL = 40
_NOT_ATOMS = frozenset({"self", "cls", "this", "def", "class", "return", "import", "from", "if", "else", "elif",
                        "for", "while", "in", "is", "not", "and", "or", "None", "True", "False", "lambda", "with",
                        "as", "try", "except", "raise", "pass", "yield", "await", "async", "function", "const",
                        "let", "var", "new", "typeof", "null", "undefined", "true", "false", "del", "global"})
# Simple statements that need nothing from the file.
_KEYWORD_STATEMENTS = {
    "python": ("continue", "break", "pass", "return None", "return True", "return False", "raise"),
    "javascript": ("continue;", "break;", "return;", "return null;", "return true;", "return false;"),
}
_KEYWORD_STATEMENTS["typescript"] = _KEYWORD_STATEMENTS["tsx"] = _KEYWORD_STATEMENTS["javascript"]
_NESTED_DEF = re.compile(r"^[ \t]+def[ \t]+([^\W\d]\w*)", re.MULTILINE | re.UNICODE)
_RETURNED_TUPLE = 3  # the last few names bound above: "return key, fields"
_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s", re.MULTILINE)
_BOUND = re.compile(r"(?:^|[\s,(])(?:import|as|def|class)\s+([^\W\d]\w*)|^[ \t]*([^\W\d]\w*)\s*=[^=]", re.MULTILINE)


def atoms(context: HoleContext) -> list[tuple[str, float, str]]:
    """(text, distance, kind) of the file's atoms, nearest first; kind: name, dotted, literal.
    Computed once per context; callers read the list, never change it."""
    if context.atom_cache is not None:
        return context.atom_cache
    best: dict[str, tuple[float, str]] = {}
    for doc in (context.left, context.right):
        for text, start, kind in _doc_atoms(doc):
            d = doc.distance(start)
            if text not in best or d < best[text][0]:
                best[text] = (d, kind)
    context.atom_cache = sorted(((t, d, k) for t, (d, k) in best.items()), key=lambda a: a[1])
    return context.atom_cache


def _doc_atoms(doc: Doc) -> list[tuple[str, int, str]]:
    t = doc.toks
    out: list[tuple[str, int, str]] = []
    i = 0
    while i < len(t):
        text = t[i].text
        if is_name(text) and not (i and t[i - 1].text in (".", "?.")):
            end = i
            while end + 2 < len(t) and t[end + 1].text == "." and is_name(t[end + 2].text) and end - i < 4:
                end += 2
            if text not in _NOT_ATOMS:
                out.append((text, t[i].start, "name"))
            if end > i and (text not in _NOT_ATOMS or text in ("self", "cls", "this")):
                out.append((doc.text[t[i].start : t[end].end], t[i].start, "dotted"))
            i = end + 1
            continue
        if (text.lstrip("rRbBuUfF")[:1] in "'\"" or text[:1].isdigit()) and len(text) <= _MAX_LITERAL \
                and "\n" not in text:
            out.append((text, t[i].start, "literal"))
        i += 1
    return out


def composed(context: HoleContext, found: ProposalSet, roles: list[tuple[str, str]]) -> None:
    """Argument lists after a callee, tests in a condition, import and keyword statements."""
    role_names = {role for role, _key in roles}
    if "args" in role_names:
        _arguments(context, found)
    if "cond" in role_names:
        _conditions(context, found)
    if context.at_line_start:
        _statements(context, found)


def _arguments(context: HoleContext, found: ProposalSet) -> None:
    near = atoms(context)
    literals = [a for a in near if a[2] != "name"][:_NEAREST_LITERALS]
    for text, distance, _kind in literals:
        found.add(f"({text})", "compose", distance=distance)
    pool = [a for a in near if a[2] != "literal"][:_NEAREST_PAIRS]
    for a, da, _ in pool:
        for b, db, _ in pool + literals[:_NEAREST_SECOND]:
            if a != b:
                found.add(f"({a}, {b})", "compose", distance=max(da, db))


def _conditions(context: HoleContext, found: ProposalSet) -> None:
    js = context.language in ("javascript", "typescript", "tsx")
    near = atoms(context)
    operands = [a for a in near if a[2] != "literal"][:_NEAREST_TESTS]
    for text, distance, _kind in operands:
        tests = (f"!{text}",) if js else (f"not {text}", f"{text} is None", f"{text} is not None")
        for test in tests:
            found.add(test, "compose", distance=distance)
    # Comparisons of two nearby atoms ("minc == maxc", "index == -1").
    equals = "===" if js else "=="
    seconds = operands[:_NEAREST_PAIRS] + [a for a in near if a[2] == "literal"][:_NEAREST_SECOND]
    for a, da, _ in operands[:_NEAREST_SECOND]:
        for b, db, _ in seconds:
            if a != b:
                found.add(f"{a} {equals} {b}", "compose", distance=max(da, db))


def _statements(context: HoleContext, found: ProposalSet) -> None:
    for statement in _KEYWORD_STATEMENTS.get(context.language or "python", ()):
        found.add(statement, "compose")
    if context.language not in (None, "python"):
        return
    _returns(context, found)
    # In an import block: the modules the file uses (``mod.attr``) but does not bind in view.
    lines = context.left.text.rsplit("\n", 3)[-3:] + context.right.text.split("\n", 3)[:3]
    if not any(_IMPORT_LINE.match(line) for line in lines):
        return
    text = context.left.text + "\n" + context.right.text
    bound = {m.group(1) or m.group(2) for m in _BOUND.finditer(text)}
    for doc in (context.left, context.right):
        t = doc.toks
        for i in range(len(t) - 1):
            name = t[i].text
            if t[i + 1].text == "." and is_name(name) and name not in bound and name not in _NOT_ATOMS \
                    and not (i and t[i - 1].text == "."):
                found.add(f"import {name}", "compose", distance=doc.distance(t[i].start))


def _returns(context: HoleContext, found: ProposalSet) -> None:
    """``return`` what the block built: a nested function (``return wrapper``), a tuple of the
    names bound last (``return key, fields``), an attribute used nearby (``return self.mode``)."""
    recent = context.left.text[-_RECENT_CHARS:]
    for m in _NESTED_DEF.finditer(recent):
        found.add(f"return {m.group(1)}", "compose", distance=float(len(recent) - m.start()))
    bound = [name for name in context.bound_names(parameters=False) if is_name(name)]
    order = sorted(bound, key=lambda name: -recent.rfind(name))[:_RETURNED_TUPLE]
    for a in order:
        for b in order:
            if a != b:
                found.add(f"return {a}, {b}", "compose")
    for text, distance, kind in atoms(context)[: 4 * _NEAREST_PAIRS]:
        if kind == "dotted":
            found.add(f"return {text}", "compose", distance=distance)
