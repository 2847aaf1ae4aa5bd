"""Cutting a source file into searchable chunks: definitions plus the top-level code between them.

One line rule: only ``\\n`` ends a line. Tree-sitter numbers rows that way, so the blocks cut
here must too; ``str.splitlines`` would also break at form feeds, ``\\x1c``-``\\x1e``, ``\\x85``,
``\\u2028``… (the standard library has form feeds), shifting every later block by a line and
naming it after the wrong text.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFINITION_KINDS", "MAX_BLOCK_LINES", "Chunk", "chunk_source", "split_lines"]

DEFINITION_KINDS = frozenset({"function", "method", "class"})
MAX_BLOCK_LINES = 40  # a run of top-level code longer than this is cut into several blocks


@dataclass(frozen=True)
class Chunk:
    """A searchable unit of a file. Lines are 0-based, end inclusive; bytes are UTF-8 offsets."""

    name: str
    kind: str  # "function" | "method" | "class" | "block"
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    text: str
    docstring: str | None = None


def split_lines(text: str) -> list[str]:
    """Lines with their ``\\n`` kept; a final line without one is kept too, an empty tail is not."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def chunk_source(text: str, language: str) -> list[Chunk]:
    """Definitions from tree-sitter plus blocks of the top-level code between them."""
    from codemlm.syntax import definitions  # tree-sitter loads only when something is indexed

    chunks = [
        Chunk(d.name, d.kind, d.start_line, d.end_line, d.start_byte, d.end_byte, d.text, d.docstring)
        for d in definitions(text, language)
        if d.kind in DEFINITION_KINDS
    ]
    covered: set[int] = set()
    for c in chunks:
        covered.update(range(c.start_line, c.end_line + 1))
    return sorted(chunks + _top_level_blocks(text, covered), key=lambda c: (c.start_line, -c.end_line))


def _top_level_blocks(text: str, covered: set[int]) -> list[Chunk]:
    lines = split_lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line.encode("utf-8", "surrogatepass")))
    runs: list[list[int]] = []
    current: list[int] = []
    for number, line in enumerate(lines):
        if number in covered:
            current = []
            continue
        # Cut an over-long run at a blank line: blocks stay about one idea long.
        if len(current) >= MAX_BLOCK_LINES or (len(current) >= MAX_BLOCK_LINES // 2 and not line.strip()):
            current = []
        if not current:
            runs.append(current)
        current.append(number)
    blocks = []
    for run in runs:
        body = [n for n in run if lines[n].strip()]
        if not body:
            continue
        first, last = body[0], body[-1]
        meaningful = [lines[n].strip() for n in body if not lines[n].lstrip().startswith("@")]
        if not any(any(ch.isalnum() for ch in s) for s in meaningful):
            continue  # only decorators, braces or punctuation: nothing a query could mean
        blocks.append(
            Chunk(
                name=meaningful[0][:60],
                kind="block",
                start_line=first,
                end_line=last,
                start_byte=starts[first],
                end_byte=starts[last + 1],
                text="".join(lines[first : last + 1]),
            )
        )
    return blocks
