"""A command whose optional packages are missing says which extra to install, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("blocked", ["datasets", "lightning"])
def test_missing_extra_is_one_line_naming_it(blocked: str, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    return 1\n")
    command = ["corpus", "build", str(tmp_path), "--out", str(tmp_path / "out")] if blocked == "datasets" else [
        "train", "--max-steps", "1", "--out", str(tmp_path / "run")]
    script = (
        f"import sys; sys.modules[{blocked!r}] = None\n"  # an import of it now fails as if not installed
        "from codemlm.cli import main\n"
        f"sys.exit(main({command!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "'train' extra" in lines[0] and "pip install -e '.[train]'" in lines[0]
    assert not (tmp_path / "out").exists()
