"""Variants of the argument lists other calls to the same callee take.

Calls to one function differ in one argument far more often than in all of them:
``canonicalize_name(lhs)`` next to ``canonicalize_name(rhs)``, ``format(arg=param_name)`` next
to ``format(arg=param.name)``. So each argument list of another call to the callee is proposed
again with one argument (or a keyword argument's value) replaced by one of the names nearest the
hole. And where the call's value is bound to a name (``etag = require|``, ``T = TypeVar|``) and the
other calls take one string, the name itself as that string is a candidate (``('etag')``), in
the quotes and with the folder prefix (``'./'``) those strings use.
"""

from __future__ import annotations

import re
from collections import Counter

from codemlm.candidates.compose import atoms
from codemlm.candidates.context import HoleContext, ProposalSet
from codemlm.candidates.lexical import is_name, lex

__all__ = ["argument_variants"]

_ANALOGS = 8  # argument lists of other calls varied, best evidence first
_SUBSTITUTES = 6  # names nearest the hole tried in each position
_MAX_ARGS = 4  # a longer list is rarely repeated with one change
_QUOTED = re.compile(r"""\A\((['"`])([^'"`\\\n]*)\1\)\Z""")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def argument_variants(context: HoleContext, found: ProposalSet, analogs: dict[str, tuple[int, float]]) -> None:
    """``analogs``: argument lists of other calls to the hole's callee -> (count, nearest distance)."""
    best = sorted(analogs.items(), key=lambda item: (-item[1][0], item[1][1]))[:_ANALOGS]
    substitutes = [(text, d) for text, d, kind in atoms(context) if kind != "literal"][:_SUBSTITUTES]
    for text, (_count, distance) in best:
        args = split_arguments(text, context.language)
        if not args or len(args) > _MAX_ARGS:
            continue
        for i, arg in enumerate(args):
            name, eq, value = arg.partition("=")
            keyword = bool(eq) and is_name(name.strip()) and not value.startswith("=")
            old = value.strip() if keyword else arg
            for new, d in substitutes:
                if new == old or new in args:
                    continue
                changed = f"{name.strip()}={new}" if keyword else new
                found.add("(" + ", ".join([*args[:i], changed, *args[i + 1 :]]) + ")", "compose",
                          distance=max(distance, d))
    _bound_name_as_string(context, found, [text for text, _ in best])


def split_arguments(text: str, language: str | None) -> list[str]:
    """``(a, f(b, c), k=1)`` -> ``["a", "f(b, c)", "k=1"]``; ``[]`` when it is not one list."""
    text = text.strip()
    if len(text) < 3 or text[0] != "(" or text[-1] != ")":
        return []
    inner = text[1:-1]
    out: list[str] = []
    depth, start = 0, 0
    for tok in lex(inner, language):
        if tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.text in (")", "]", "}"):
            depth -= 1
            if depth < 0:
                return []
        elif tok.text == "," and depth == 0:
            out.append(inner[start : tok.start].strip())
            start = tok.end
    out.append(inner[start:].strip())
    return out if all(out) and depth == 0 else []


def _bound_name_as_string(context: HoleContext, found: ProposalSet, analogs: list[str]) -> None:
    """``name = f|`` where other calls to ``f`` take one string: ``('name')`` (and its lower-case
    and dashed spellings), in those strings' quotes, with their folder prefixes."""
    toks = context.left.toks
    i = len(toks) - 1  # the callee's first name: "t" of "t.TypeVar"
    while i >= 2 and toks[i - 1].text == "." and is_name(toks[i - 2].text):
        i -= 2
    if i < 2 or toks[i - 1].text != "=" or not is_name(toks[i - 2].text):
        return
    quotes: Counter[str] = Counter()
    prefixes: Counter[str] = Counter()
    for text in analogs:
        m = _QUOTED.match(text)
        if m:
            quotes[m.group(1)] += 1
            prefixes[m.group(2).rpartition("/")[0] + "/" if "/" in m.group(2) else ""] += 1
    if not quotes:
        return
    name = toks[i - 2].text
    spellings = dict.fromkeys((name, name.lower(), _CAMEL.sub("-", name).lower().replace("_", "-")))
    quote = quotes.most_common(1)[0][0]
    for prefix, _ in prefixes.most_common(3):
        for spelling in spellings:
            found.add(f"({quote}{prefix}{spelling}{quote})", "compose")
