"""Reading a file the client named: regular files inside the workspace, capped, never blocking."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from codemlm.errors import InputError
from lsp_server.files import inside, read_text, read_text_or_none


def _in_thread(fn: object, timeout: float = 5.0) -> object:
    """Run ``fn`` and fail (rather than hang the suite) if it does not return in time."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_call(fn)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the read blocked"
    return result[0]


def _call(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception as exc:  # returned, so the test can look at it
        return exc


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("x = 'é'\n", encoding="utf-8")
    assert read_text(path) == "x = 'é'\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    error = _in_thread(lambda: read_text(fifo))
    assert isinstance(error, InputError) and "not a regular file" in str(error)
    assert read_text_or_none(fifo) is None


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_endless_devices_are_refused(tmp_path: Path) -> None:
    error = _in_thread(lambda: read_text(Path("/dev/zero")))
    assert isinstance(error, InputError) and "not a regular file" in str(error)
    # ... and a link to one inside the workspace is outside it once resolved.
    link = tmp_path / "zero.py"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="outside the workspace"):
        inside(link, tmp_path)


def test_paths_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "in.py").write_text("x = 1\n")
    (tmp_path / "secret.txt").write_text("key\n")
    assert inside(root / "in.py", root) == (root / "in.py").resolve()
    with pytest.raises(InputError, match="outside the workspace"):
        inside(root / ".." / "secret.txt", root)
    with pytest.raises(InputError, match="does not exist"):
        inside(root / "missing.py", root)


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    path.write_bytes(b"#" * 2000)
    assert read_text(path, max_bytes=2000) == "#" * 2000
    with pytest.raises(InputError, match="limit"):
        read_text(path, max_bytes=1999)


def test_binary_content_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "blob.py"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="not UTF-8"):
        read_text(path)
    assert read_text_or_none(tmp_path / "gone.py") is None
