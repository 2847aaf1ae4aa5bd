"""Statement source: for a hole at the start of a line, whole lines of the file and short returns.

Code repeats itself line by line (``self._checkClosed()``, ``return ret``), and a block often
ends by returning the value it just built, so at a line start the file's own lines and
``return <a name assigned above>`` are candidates.
"""

from __future__ import annotations

import re

from codemlm.candidates.context import HoleContext, ProposalSet

__all__ = ["statements"]

_ASSIGNED = re.compile(r"^[ \t]*([^\W\d]\w*)[ \t]*(?:[-+*/|&]?=)[^=]", re.MULTILINE | re.UNICODE)
_MAX_LINE = 120
_RECENT_CHARS = 4_000  # assignments this close above the hole are what a return gives back
_COMMENT = ("#", "//", "/*", "*", "@")
_RETURNING = frozenset({"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"})


def statements(context: HoleContext, found: ProposalSet) -> None:
    if not context.at_line_start:
        return
    for doc in (context.left, context.right):
        offset = 0
        for line in doc.text.split("\n"):
            stripped = line.strip()
            if stripped and len(stripped) <= _MAX_LINE and not stripped.startswith(_COMMENT) \
                    and not stripped.endswith((":", "{", "(", "[", ",", "\\")):
                found.add(stripped, "line", distance=doc.distance(offset))
            offset += len(line) + 1
    if context.language not in _RETURNING:
        return
    recent = context.left.text[-_RECENT_CHARS:]
    found.add("return", "line")
    for m in _ASSIGNED.finditer(recent):
        found.add(f"return {m.group(1)}", "line", distance=float(len(recent) - m.start()))
