"""Kind classes of syntax spans: the shared vocabulary of syntax, masking and metrics.

Values are stored in datasets (int8 columns), so never renumber them; append new kinds.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["SpanKind"]


class SpanKind(IntEnum):
    NONE = 0  # a token masked outside any syntax span (random/token masking)
    IDENTIFIER = 1
    ARGUMENTS = 2
    EXPRESSION = 3
    STATEMENT = 4
    BLOCK = 5
    DEFINITION = 6
    STRING_COMMENT = 7

    @property
    def label(self) -> str:
        return self.name.lower()
