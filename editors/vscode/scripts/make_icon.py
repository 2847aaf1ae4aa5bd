"""Draws the extension's icon (images/icon.png, 128x128 as the Marketplace asks) without an
image library: a dark rounded square holding three lines of "code", the middle one with a
highlighted hole, the masked span codemlm fills. Deterministic, so a test can check the
committed file is what this script draws.

    python3 editors/vscode/scripts/make_icon.py            # rewrites images/icon.png
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

SIZE = 128
RADIUS = 22
BACKGROUND = (30, 58, 95, 255)
CODE = (200, 214, 229, 255)
HOLE = (245, 179, 1, 255)
CLEAR = (0, 0, 0, 0)
# (row, x0, x1, colour) bars, 12 px high: three lines of code, the hole in the middle one.
BARS = (
    (30, 22, 92, CODE),
    (58, 22, 46, CODE),
    (58, 52, 92, HOLE),
    (58, 98, 106, CODE),
    (86, 34, 80, CODE),
)
BAR_HEIGHT = 12
ICON_PATH = Path(__file__).resolve().parent.parent / "images" / "icon.png"


def _inside_rounded_square(x: int, y: int) -> bool:
    # Distance from the nearest corner's centre, only in the corner regions.
    cx = min(max(x, RADIUS), SIZE - 1 - RADIUS)
    cy = min(max(y, RADIUS), SIZE - 1 - RADIUS)
    return (x - cx) ** 2 + (y - cy) ** 2 <= RADIUS**2


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    if not _inside_rounded_square(x, y):
        return CLEAR
    for row, x0, x1, colour in BARS:
        if row <= y < row + BAR_HEIGHT and x0 <= x < x1:
            return colour
    return BACKGROUND


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def render() -> bytes:
    """The icon as PNG bytes (8-bit RGBA, no filtering)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(SIZE)) for y in range(SIZE)
    )
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def main() -> int:
    ICON_PATH.parent.mkdir(parents=True, exist_ok=True)
    ICON_PATH.write_bytes(render())
    print(ICON_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
