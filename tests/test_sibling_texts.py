"""The file-side neighbours of `codemlm complete`: regular files only, capped, never blocking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codemlm.candidates import sibling_texts


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_huge_files_and_bad_utf8_are_skipped_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("y = 2\n", encoding="utf-8")
    os.mkfifo(tmp_path / "c.py")  # reading it would block forever with no writer
    (tmp_path / "d.py").write_bytes(b"z = '\xff'\n")
    (tmp_path / "e.py").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    os.symlink("/dev/zero", tmp_path / "f.py")
    assert sibling_texts(tmp_path / "a.py") == ["y = 2\n"]
