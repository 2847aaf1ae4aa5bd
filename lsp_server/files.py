"""Reading a workspace file from disk without trusting its name.

A URI comes from the client (and with ``--tcp`` from any local process): it can name
``/dev/zero`` (endless), a FIFO or ``/dev/stdin`` (a read that never returns), or a file
outside the workspace. So a file is opened without blocking (``O_NONBLOCK``: opening a FIFO
would otherwise wait for a writer), must be a regular file once open (``fstat`` on the open
descriptor, so a swap between check and read cannot fool it), must lie inside the workspace
after symlinks are resolved, and is read only up to a size cap.
"""

from __future__ import annotations

from pathlib import Path

from codemlm.errors import InputError
from codemlm.regular_files import MAX_SOURCE_FILE_BYTES, FileTooLargeError, read_regular_file

__all__ = ["MAX_FILE_BYTES", "inside", "read_text", "read_text_or_none"]

MAX_FILE_BYTES = MAX_SOURCE_FILE_BYTES


def inside(path: Path, root: Path) -> Path:
    """``path`` with symlinks resolved, if it lies under ``root``; raises InputError if not."""
    try:
        real = path.resolve(strict=True)
        real.relative_to(root.resolve())
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist") from exc
    except (ValueError, OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise InputError(f"{path} is outside the workspace {root}") from exc
    return real


def read_text(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; InputError says why not.

    Blocking (a disk read): call it off the event loop for files of unknown size. The
    non-blocking, fstat-checked, capped read is the library's (codemlm.regular_files).
    """
    try:
        data = read_regular_file(path, max_bytes=max_bytes)
    except FileTooLargeError as exc:
        raise InputError(f"{path} is too large: the limit is {max_bytes} bytes") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text") from exc


def read_text_or_none(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """:func:`read_text`, or None when the file cannot be read as text (gone, binary, huge)."""
    try:
        return read_text(path, max_bytes=max_bytes)
    except InputError:
        return None
