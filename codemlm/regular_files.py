"""Reading a file that a stranger may have put in the tree: regular files only, size-capped.

A repository (or an editor's request) can hold a FIFO, a device node or a socket under any
name, ``.gitignore`` included. ``open()`` on a FIFO blocks until a writer appears (forever),
and ``/dev/zero`` never ends. So the file is opened non-blocking, checked with ``fstat`` on the
open descriptor (no window between the check and the read for a swap to slip into), and read
up to a cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from codemlm.errors import InputError

__all__ = ["MAX_SOURCE_FILE_BYTES", "FileTooLargeError", "read_regular_file"]

# The largest source file completion reads (CLI and server): larger than any file worth
# completing in (a 50,000-line file is ~2 MB), far below what would hurt memory.
MAX_SOURCE_FILE_BYTES = 16 << 20

# O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
# O_NOCTTY: a terminal device must never become our controlling terminal.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_CHUNK = 1 << 20


class FileTooLargeError(InputError):
    """The file is bigger than the caller's cap (it was not read)."""


def read_regular_file(path: str | Path, *, max_bytes: int, follow_symlinks: bool = True) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Raises FileTooLargeError when it is larger, InputError when it is not a regular file
    (FIFO, device, socket, directory; a symbolic link when ``follow_symlinks`` is false) or
    cannot be opened or read.
    """
    flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # ELOOP here is a symbolic link refused by O_NOFOLLOW
        raise InputError(f"cannot open {os.fsdecode(path)!r}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{os.fsdecode(path)!r} is not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLargeError(f"{os.fsdecode(path)!r} is larger than {max_bytes} bytes")
        # The size can change under us (a log being written): read at most one byte past the
        # cap, which is enough to tell.
        parts: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileTooLargeError(f"{os.fsdecode(path)!r} is larger than {max_bytes} bytes")
        return b"".join(parts)
    except OSError as exc:
        raise InputError(f"cannot read {os.fsdecode(path)!r}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
