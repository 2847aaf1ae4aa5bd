"""Continuations source: what followed the same last few tokens elsewhere, up to a natural end.

For every place in the file (and the repository) where the tokens before it equal the tokens
before the hole, the spans that start there are candidates: the next token alone, every span
that ends where the text after it equals the text after the hole (right anchor), and every
span that ends at a natural boundary (a comma, a closing bracket, a line end) with its
brackets balanced. How many tokens matched on each side is the evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codemlm.candidates.context import Doc, HoleContext, ProposalSet, match_back, match_forward
from codemlm.candidates.lexical import NEWLINE, is_name

if TYPE_CHECKING:
    from codemlm.candidates.repository import Repository

__all__ = ["continuations"]

_LEFT = 4  # tokens of left context compared
_RIGHT = 3  # tokens of right context compared
_MAX_SPAN = 24  # tokens in one candidate
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())
_ENDS = frozenset({",", ";", ":", NEWLINE, "=", "in", "for", "if", "else", "and", "or"})
# After these the next token says little: require two matching tokens before trusting them.
_WEAK = frozenset({"(", ",", NEWLINE, "[", "{", "=", ":", "."})


def continuations(context: HoleContext, found: ProposalSet, repository: Repository | None = None) -> None:
    left = context.left_tokens(_LEFT)
    right = context.right_tokens(_RIGHT)
    if not left:
        return
    need = 2 if left[-1] in _WEAK and len(left) >= 2 else 1
    for doc in (context.left, context.right):
        toks = doc.toks
        for i in range(1, len(toks)):
            if toks[i - 1].text == left[-1]:
                m = match_back(toks, i, left)
                if m >= need:
                    _spans(doc, i, m, right, context, found)
    if repository is not None:
        for doc, i in repository.after(left[-need:]):
            _spans(doc, i, match_back(doc.toks, i, left), right, context, found)
    if right:
        _before_right(context, found, left, right)


def _before_right(context: HoleContext, found: ProposalSet, left: list[str], right: list[str]) -> None:
    """The single token (a name or literal) that came before the same right context elsewhere:
    ``func|.__doc__`` is filled by what preceded ``.__doc__`` in the file."""
    need = 2 if right[0] in _WEAK and len(right) >= 2 else 1
    for doc in (context.left, context.right):
        toks = doc.toks
        for j in range(1, len(toks)):
            if toks[j].text != right[0]:
                continue
            r = match_forward(toks, j, right)
            prev = toks[j - 1].text
            if r >= need and (is_name(prev) or prev[:1].isdigit() or prev[:1] in "'\"`"):
                found.add(prev, "continuation", distance=doc.distance(toks[j - 1].start),
                          left_match=match_back(toks, j - 1, left), right_match=r)


def _spans(doc: Doc, i: int, m: int, right: list[str], context: HoleContext, found: ProposalSet) -> None:
    toks = doc.toks
    depth: list[str] = []
    distance = doc.distance(toks[i].start) if i < len(toks) else doc.distance(len(doc.text))
    for j in range(i, min(len(toks), i + _MAX_SPAN)):
        tok = toks[j].text
        if tok == NEWLINE and (context.single_line or not depth):
            if j > i and not depth:
                _emit(doc, i, j, m, match_forward(toks, j, right), distance, found)
            return
        if tok in _CLOSE:
            if not depth or depth[-1] != tok:
                # An unopened closer ends the enclosing expression: the span before it is whole.
                if j > i and not depth:
                    _emit(doc, i, j, m, match_forward(toks, j, right), distance, found)
                return
            depth.pop()
        elif tok in _OPEN:
            depth.append(_OPEN[tok])
        if depth:
            continue
        end = j + 1
        r = match_forward(toks, end, right)
        nxt = toks[end].text if end < len(toks) else NEWLINE
        single = end == i + 1 and (is_name(tok) or tok[:1].isdigit() or tok[:1] in "'\"`")
        if r or single or nxt in _ENDS or nxt in _CLOSE:
            _emit(doc, i, end, m, r, distance, found)


def _emit(doc: Doc, i: int, end: int, m: int, r: int, distance: float, found: ProposalSet) -> None:
    text = doc.text[doc.toks[i].start : doc.toks[end - 1].end]
    found.add(text, "continuation", distance=distance, left_match=m, right_match=r)
