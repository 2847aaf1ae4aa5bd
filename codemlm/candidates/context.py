"""What every context source sees: the hole's two sides, lexed once, and the proposals they make.

A :class:`Proposal` is one candidate text with the evidence for it (which sources proposed
it, how often, how near the hole, how much of the context around its occurrences matched the
hole's). The ranker turns that evidence into features; the sources only collect it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from codemlm.candidates.lexical import NEWLINE, Tok, lex

__all__ = ["Doc", "HoleContext", "Proposal", "ProposalSet"]

# Only this much of the file on each side is lexed: a huge file costs no more than a big one.
SIDE_CHARS = 48_000
# Names bound above the hole: ``x = ...`` / ``self.x += ...`` / ``for a, b in`` / ``as x`` /
# ``const x =``; only this much above the hole counts (the enclosing function, roughly).
_BOUND_CHARS = 3_000
_BINDING = re.compile(
    r"^[ \t]*(?:(?:const|let|var)[ \t]+)?((?:self\.|this\.)?[^\W\d]\w*(?:[ \t]*,[ \t]*[^\W\d]\w*)*)"
    r"[ \t]*(?:[-+*/|&%]?=)(?!=)"
    r"|\bfor[ \t]+([\w, \t]+?)[ \t]+in\b|\bas[ \t]+([^\W\d]\w*)", re.MULTILINE | re.UNICODE)
# A function's header (its parameters are bound in its body): ``def f(a, b=g(1)):``, ``function (a, b)``.
_HEADER = re.compile(r"\b(?:def|function)\b[ \t]*[\w$]*[ \t]*\(((?:[^()]|\([^()]*\))*)\)", re.UNICODE)
_PARAMETER = re.compile(r"[*.\s]*([^\W\d]\w*|\$\w*)", re.UNICODE)


@dataclass
class Doc:
    """A lexed text the sources search: one side of the holed file, or a repository file.

    ``distance(char)`` is how far an occurrence lies from the hole (characters); repository
    files are infinitely far, which the ranker reads as "not in this file".
    """

    text: str
    toks: list[Tok]
    side: str  # "left" (before the hole), "right" (after it) or "repo"

    def distance(self, char: int) -> float:
        if self.side == "left":
            return float(len(self.text) - char)
        if self.side == "right":
            return float(char)
        return math.inf


@dataclass
class HoleContext:
    """The hole as the sources need it: text on both sides (bounded), lexed, and its shape."""

    left: Doc
    right: Doc
    language: str | None
    single_line: bool
    typed: str = ""  # a typed word every candidate must start with ("" when none)
    # The file's atoms (compose.atoms), computed once: composed lists and argument variants share them.
    atom_cache: list[tuple[str, float, str]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, prefix: str, suffix: str, language: str | None, *, single_line: bool,
              typed: str = "") -> HoleContext:
        prefix, suffix = prefix[-SIDE_CHARS:], suffix[:SIDE_CHARS]
        return cls(Doc(prefix, lex(prefix, language), "left"), Doc(suffix, lex(suffix, language), "right"),
                   language, single_line, typed)

    def left_tokens(self, n: int) -> list[str]:
        return [t.text for t in self.left.toks[-n:]]

    def right_tokens(self, n: int) -> list[str]:
        return [t.text for t in self.right.toks[:n]]

    @property
    def at_line_start(self) -> bool:
        """Only indentation between the previous newline and the hole: a statement goes here."""
        line = self.left.text.rsplit("\n", 1)[-1]
        return not line.strip()

    def bound_names(self, *, parameters: bool = True) -> set[str]:
        """Names assigned (or loop / ``as`` targets) in the code just above the hole, and the
        parameters of the last function header there."""
        out: set[str] = set()
        recent = self.left.text[-_BOUND_CHARS:]
        for m in _BINDING.finditer(recent):
            names = m.group(1) or m.group(2) or m.group(3)
            out.update(n.strip() for n in names.split(",") if n.strip())
        headers = list(_HEADER.finditer(recent)) if parameters else []
        if headers:
            header = headers[-1]
            # The parameters of the function the hole is (most likely) in.
            depth, piece = 0, ""
            for ch in header.group(1) + ",":
                depth += ch in "([{"
                depth -= ch in ")]}"
                if ch == "," and depth == 0:
                    parameter = _PARAMETER.match(piece)
                    if parameter:
                        out.add(parameter.group(1))
                    piece = ""
                else:
                    piece += ch
        return out

    @property
    def after_dot(self) -> bool:
        return bool(self.left.toks) and self.left.toks[-1].text in (".", "?.") and \
            self.left.toks[-1].end == len(self.left.text)


@dataclass
class Proposal:
    """One candidate text and the evidence for it, merged over every source that proposed it."""

    text: str
    sources: set[str] = field(default_factory=set)
    count: int = 0
    left_match: int = 0  # tokens before an occurrence equal to those before the hole
    right_match: int = 0  # tokens after an occurrence equal to those after the hole
    distance: float = math.inf  # characters from the hole to the nearest occurrence
    logp: float | None = None  # mean token log-probability under the MLM, once scored


class ProposalSet:
    """Proposals keyed by whitespace-trimmed text; adding the same text again merges evidence."""

    def __init__(self, context: HoleContext) -> None:
        self.context = context
        self.items: dict[str, Proposal] = {}

    def add(self, text: str, source: str, *, distance: float = math.inf, left_match: int = 0,
            right_match: int = 0, count: int = 1) -> None:
        key = text.strip()
        if not key or len(key) > 200:
            return
        if self.context.single_line and ("\n" in key or "\r" in key):
            return
        if self.context.typed and not (key.startswith(self.context.typed) and len(key) > len(self.context.typed)):
            return
        p = self.items.get(key)
        if p is None:
            p = self.items[key] = Proposal(key)
        p.sources.add(source)
        p.count += count
        p.left_match = max(p.left_match, left_match)
        p.right_match = max(p.right_match, right_match)
        p.distance = min(p.distance, distance)

    def __len__(self) -> int:
        return len(self.items)

    def proposals(self) -> list[Proposal]:
        return list(self.items.values())


def match_back(toks: list[Tok], i: int, want: list[str]) -> int:
    """How many tokens before position ``i`` equal ``want``'s last ones (read backwards)."""
    n = 0
    while n < len(want) and i - 1 - n >= 0 and toks[i - 1 - n].text == want[-1 - n]:
        n += 1
    return n


def match_forward(toks: list[Tok], j: int, want: list[str]) -> int:
    """How many tokens from position ``j`` equal ``want``'s first ones."""
    n = 0
    while n < len(want) and j + n < len(toks) and toks[j + n].text == want[n]:
        n += 1
    return n


def is_line_break(tok: Tok) -> bool:
    return tok.text == NEWLINE
