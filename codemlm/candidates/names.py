"""Names source: identifiers of the file and the repository, and members seen after the same receiver.

Most identifier holes are filled with a name that already occurs nearby (64% of held-out
identifier targets occur elsewhere in the same file). After ``obj.`` the names that followed
the same ``obj.`` elsewhere are far more likely than any other name, so they get their own
source label (``member``) and the ranker weighs them separately.
"""

from __future__ import annotations

import builtins
import keyword
import math
from collections import Counter
from typing import TYPE_CHECKING

from codemlm.candidates.context import HoleContext, ProposalSet
from codemlm.candidates.lexical import is_name

if TYPE_CHECKING:
    from codemlm.candidates.repository import Repository

__all__ = ["is_keyword", "member_names", "names"]

# Statement keywords are not names a hole is filled with (values such as None/True/self are).
_KEYWORDS = (frozenset(keyword.kwlist) - {"None", "True", "False"}) | frozenset(
    ["var", "let", "const", "function", "return", "if", "else", "for", "while", "do", "switch", "case", "break", "continue", "new", "delete", "typeof", "instanceof", "void", "throw", "try", "catch", "finally", "class", "extends", "import", "export", "default", "from", "yield", "await", "async", "static", "get", "set", "of", "in"]
)


_BUILTINS = frozenset(dir(builtins))
_REPO_NAMES = 30  # the repository's commonest names proposed at a hole with nothing typed
_NEAREST_BASES = 20  # capitalized names tried as a class's base


def names(context: HoleContext, found: ProposalSet, repo_counts: Counter[str] | None = None) -> None:
    """Every identifier of the holed file (nearest occurrence, count), then the repository's."""
    for doc in (context.left, context.right):
        for tok in doc.toks:
            if is_name(tok.text) and tok.text not in _KEYWORDS:
                found.add(tok.text, "name", distance=doc.distance(tok.start))
    if repo_counts:
        # Every name of a repository is thousands of candidates: noise that buries the file's
        # own. Without a typed prefix to filter them, only the repository's commonest names join;
        # the file's names get their repository counts as evidence.
        pool = dict(repo_counts.items() if context.typed else repo_counts.most_common(_REPO_NAMES))
        pool.update((name, repo_counts[name]) for name in list(found.items) if name in repo_counts)
        for name, count in pool.items():
            if name not in _KEYWORDS:
                found.add(name, "name", count=count)


def member_names(context: HoleContext, found: ProposalSet, repository: Repository | None = None) -> None:
    """After ``receiver.``: the names that followed the same receiver anywhere (file, then repository)."""
    toks = context.left.toks
    if not context.after_dot or len(toks) < 2 or not is_name(toks[-2].text):
        return
    receiver, dot = toks[-2].text, toks[-1].text
    for doc in (context.left, context.right):
        t = doc.toks
        for i in range(2, len(t)):
            if t[i - 1].text == dot and t[i - 2].text == receiver and is_name(t[i].text):
                found.add(t[i].text, "member", distance=doc.distance(t[i].start))
    if repository is not None:
        for doc, i in repository.after((receiver, dot)):
            if is_name(doc.toks[i].text):
                found.add(doc.toks[i].text, "member")


def is_keyword(text: str) -> bool:
    return text in _KEYWORDS


def dotted_names(context: HoleContext, found: ProposalSet) -> None:
    """``a.b`` and ``a.b.c`` chains of the file: most expression holes are one of them."""
    for doc in (context.left, context.right):
        t = doc.toks
        for i in range(len(t) - 2):
            if not (is_name(t[i].text) and t[i + 1].text == "." and is_name(t[i + 2].text)):
                continue
            if i and t[i - 1].text == ".":
                continue  # the chain started earlier
            end = i + 2
            found.add(doc.text[t[i].start : t[end].end], "name", distance=doc.distance(t[i].start))
            if end + 2 < len(t) and t[end + 1].text == "." and is_name(t[end + 2].text):
                found.add(doc.text[t[i].start : t[end + 2].end], "name", distance=doc.distance(t[i].start))


def names_as_arguments(context: HoleContext, found: ProposalSet, role: str, *, nearest: int = 40) -> None:
    """For a hole after ``f`` (``def f``): ``()``, ``(name)`` for the nearest names, ``(self)`` in a class.

    Most argument lists are short; one nearby name in parentheses is the commonest of all.
    """
    seen: dict[str, float] = {}
    for doc in (context.left, context.right):
        for tok in doc.toks:
            if is_name(tok.text) and tok.text not in _KEYWORDS:
                d = doc.distance(tok.start)
                seen[tok.text] = min(seen.get(tok.text, d), d)
    near = sorted(seen, key=seen.__getitem__)[:nearest]
    if role == "bases":
        _bases(context, found)
        return
    if role == "params":
        indented = context.left.text.rsplit("\n", 1)[-1][:1] in (" ", "\t")
        receiver = "self" if indented and context.language in (None, "python") else ""
        if receiver:
            found.add(f"({receiver})", "wrap")
        found.add("()", "wrap")
        # A parameter is never the receiver again, nor the name being defined ("def f(self, f)").
        defined = context.left.toks[-1].text if context.left.toks else ""
        for name in near:
            if name in (receiver, defined, "self", "cls", "this") or name.startswith("__"):
                continue
            # An indented def is a method or a nested function: with and without the receiver.
            if receiver:
                found.add(f"({receiver}, {name})", "wrap", distance=seen[name])
            found.add(f"({name})", "wrap", distance=seen[name])
        _body_parameters(context, found, receiver, defined)
        return
    found.add("()", "wrap")
    for name in near:
        found.add(f"({name})", "wrap", distance=seen[name])


_FREE_PARAMETERS = 4  # a definition's first few free names, taken one, two, three... at a time


def _body_parameters(context: HoleContext, found: ProposalSet, receiver: str, defined: str) -> None:
    """``def f|`` followed by its body: the names the body reads before (or without) assigning
    them, in the order it first uses them, are its likeliest parameters (``(self, pos)``)."""
    body = context.right
    toks = body.toks
    # The body: from the first line after the signature to the first line indented no deeper
    # than the ``def`` (or the end of what is in view).
    line = context.left.text.rsplit("\n", 1)[-1]
    indent = len(line) - len(line.lstrip())
    end, start = len(toks), None
    for i, tok in enumerate(toks):
        if tok.text != "\n" or i + 1 >= len(toks):
            continue
        nxt = toks[i + 1]
        line_start = body.text.rfind("\n", 0, nxt.start) + 1
        if start is None:
            start = i + 1
        elif nxt.start - line_start <= indent:
            end = i + 1
            break
    if start is None:
        return
    assigned: set[str] = set()
    free: list[str] = []
    for i in range(start, end):
        name = toks[i].text
        if not is_name(name) or name in _KEYWORDS or name in assigned or name in free or name == defined:
            continue
        if name in ("self", "cls", "this", receiver) or (i and toks[i - 1].text in (".", "?.")):
            continue
        after = toks[i + 1].text if i + 1 < end else ""
        if after == "(" or name[:1].isupper() or name in _BUILTINS:
            continue  # a function called, a class or constant, a builtin: not a parameter, mostly
        if after in ("=", "+=", "-=", ",") and (i == start or toks[i - 1].text == "\n"):
            assigned.add(name)  # bound by the body itself ("x = ...", "a, b = ...")
            continue
        free.append(name)
        if len(free) == _FREE_PARAMETERS:
            break
    head = [receiver] if receiver else []
    for n in range(1, len(free) + 1):
        distance = float(toks[start].start) if start < len(toks) else 0.0
        for params in dict.fromkeys((tuple(head + free[:n]), tuple(free[:n]))):
            found.add("(" + ", ".join(params) + ")", "wrap", distance=distance)


def _bases(context: HoleContext, found: ProposalSet) -> None:
    """``class Name|``: a class's base is a class: the file's capitalized names and dotted
    names ending in one (``Exception``, ``RegexLexer``, ``abc.ABC``), nearest first."""
    seen: dict[str, float] = {}
    for doc in (context.left, context.right):
        t = doc.toks
        for i, tok in enumerate(t):
            if not is_name(tok.text) or (i and t[i - 1].text in (".", "?.")):
                continue
            end = i
            while end + 2 < len(t) and t[end + 1].text == "." and is_name(t[end + 2].text):
                end += 2
            if t[end].text[:1].isupper():
                text = doc.text[tok.start : t[end].end]
                seen[text] = min(seen.get(text, math.inf), doc.distance(tok.start))
    defined = context.left.toks[-1].text if context.left.toks else ""
    for text in sorted(seen, key=seen.__getitem__)[:_NEAREST_BASES]:
        if text != defined:
            found.add(f"({text})", "wrap", distance=seen[text])
