"""Headless Neovim as a real editor client of the server (plain ``vim.lsp``, no plugin).

The Lua script (tests/lsp/neovim_client.lua) starts ``python -m lsp_server`` through
``vim.lsp.start_client``, attaches a buffer holding a hole the tiny model knows, waits for
``codemlm/status`` ready, requests a completion and workspace symbols, and writes what it
received to JSON, which this test checks. Skipped when ``nvim`` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tiny_model import tiny_model_dir
from tests.lsp.harness import CALC_PY, make_workspace

LUA = Path(__file__).resolve().parent / "lsp" / "neovim_client.lua"
NVIM = shutil.which("nvim")

pytestmark = pytest.mark.skipif(NVIM is None, reason="nvim is not installed (apt-get install neovim)")


def test_neovim_gets_completions_and_symbols(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert NVIM is not None
    workspace = make_workspace(tmp_path)
    (workspace / "calc_hole.py").write_text(CALC_PY.replace("return a - b", "return "), encoding="utf-8")
    out = tmp_path / "report.json"
    env = {
        **os.environ,
        "CODEMLM_NVIM_OUT": str(out),
        "CODEMLM_NVIM_PYTHON": sys.executable,
        "CODEMLM_NVIM_ROOT": str(workspace),
        "CODEMLM_NVIM_MODEL": str(tiny_model_dir(tmp_path_factory)),
        "CODEMLM_NVIM_FILE": "calc_hole.py",
        "CODEMLM_NVIM_LINE": "5",
        "CODEMLM_NVIM_CHARACTER": "11",
        "CODEMLM_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "XDG_STATE_HOME": str(tmp_path / "state"),  # Neovim's lsp.log goes here, not to ~
    }
    env.pop("CODEMLM_MODEL", None)
    ran = subprocess.run(
        [NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {LUA}"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert out.exists(), f"no report; nvim exited {ran.returncode}: {ran.stderr[-2000:]}"
    report = json.loads(out.read_text())
    assert ran.returncode == 0, report.get("error")
    assert report["ready"] is True, report["status"]
    assert report["status"][0]["state"] == "indexing"

    completion = report["completion"]
    items = completion["items"] if isinstance(completion, dict) else completion
    new_texts = [item["textEdit"]["newText"] for item in items]
    assert "a - b" in new_texts, new_texts
    for item in items:
        assert item["textEdit"]["range"] == {"start": {"line": 5, "character": 11}, "end": {"line": 5, "character": 11}}

    symbols = report["symbols"]
    muls = [s for s in symbols if s["name"] == "mul"]
    assert muls, symbols
    # calc.py and calc_hole.py both define mul() on line 8 (0-based).
    assert {s["location"]["uri"] for s in muls} <= {(workspace / n).as_uri() for n in ("calc.py", "calc_hole.py")}
    assert all(s["location"]["range"]["start"]["line"] == 8 for s in muls)
