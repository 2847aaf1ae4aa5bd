"""Neovim as a real LSP client: the editors/neovim plugin against the real codemlm server.

Runs ``nvim --headless -u NONE -c "luafile editors/neovim/test/test.lua"`` on a copy of the
fixture repository with a tiny trained model; the Lua script sets the plugin up, opens a Python
file (FileType starts and attaches the server), waits for ``codemlm/status`` ready, runs
``:CodemlmSearch``, asks for completions and runs fill-selection, and writes what it saw as JSON,
which this test checks. Skipped when nvim is not installed (``apt-get install neovim``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tiny_model import SNIPPET, tiny_model_dir

ROOT = Path(__file__).resolve().parent.parent
TEST_LUA = ROOT / "editors" / "neovim" / "test" / "test.lua"
FIXTURE_REPO = ROOT / "tests" / "fixtures" / "multilang_repo"
NVIM = shutil.which("nvim")
# Extra Neovim binaries to run the same test with (os.pathsep-separated), e.g. a current release
# next to Debian's 0.7: the plugin has one code path for each.
NVIM_BINARIES = [b for b in [NVIM, *os.environ.get("CODEMLM_TEST_NVIM", "").split(os.pathsep)] if b]

pytestmark = [
    pytest.mark.skipif(NVIM is None, reason="nvim is not installed (apt-get install neovim)"),
    pytest.mark.skipif(
        importlib.util.find_spec("lsp_server.__main__") is None,
        reason="the language server (python -m lsp_server) is not installed in this environment",
    ),
]

QUERY = "euclidean distance between two points"
FILE = "src/geometry/shapes.py"
FILL_LINE = 11  # `    return math.hypot(x2 - x1, y2 - y1)` in FILE
# A file the tiny model knows by heart, with `a - b` cut out after `return ` in sub() (line 5, 0-based).
HOLE_FILE = "calc_hole.py"
HOLE_TEXT = SNIPPET.replace("return a - b", "return ")
HOLE_LINE, HOLE_CHARACTER = 5, len("    return ")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def run_neovim(
    tmp_path: Path, model_dir: Path, nvim: str | None = NVIM, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    workspace = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, workspace)
    (workspace / HOLE_FILE).write_text(HOLE_TEXT, encoding="utf-8")
    out = tmp_path / "nvim_report.json"
    env = {
        **os.environ,
        "CODEMLM_NVIM_PYTHON": sys.executable,
        "CODEMLM_NVIM_WORKSPACE": str(workspace),
        "CODEMLM_NVIM_FILE": FILE,
        "CODEMLM_NVIM_QUERY": QUERY,
        "CODEMLM_NVIM_OUT": str(out),
        # The model comes from the environment, not from `settings`: the plugin runs with the
        # default setup (no settings table), the one every new user has.
        "CODEMLM_MODEL": str(model_dir),
        "CODEMLM_NVIM_FILL_LINE": str(FILL_LINE),
        "CODEMLM_NVIM_HOLE_FILE": HOLE_FILE,
        "CODEMLM_NVIM_HOLE_LINE": str(HOLE_LINE),
        "CODEMLM_NVIM_HOLE_CHARACTER": str(HOLE_CHARACTER),
        "CODEMLM_NVIM_TIMEOUT_MS": "60000",
        "CODEMLM_CACHE_DIR": str(tmp_path / "cache"),
        # Neovim writes its LSP log and shada under these; keep them out of the user's home.
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg_cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "OMP_NUM_THREADS": "1",
        # The server of this checkout, whichever directory Neovim starts it in.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra_env,
    }
    assert nvim is not None
    proc = subprocess.run(
        [nvim, "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {TEST_LUA}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    return proc, report


@pytest.mark.parametrize("nvim", NVIM_BINARIES)
def test_neovim_plugin_search_completion_and_fill(tmp_path: Path, model_dir: Path, nvim: str) -> None:
    proc, report = run_neovim(tmp_path, model_dir, nvim)
    assert report, f"no report from nvim (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}"
    assert "error" not in report, report["error"]
    assert proc.returncode == 0

    # The default setup sends its settings as an object (an empty Lua table is a JSON array
    # unless the plugin says otherwise), and the server found nothing wrong with them.
    assert json.loads(report["settings_json"]) == {"codemlm": {}}
    assert json.loads(report["settings_json_nested"]) == {
        "codemlm": {"completion": {}, "inlineCompletion": {"enabled": False}, "languages": []}
    }
    # (LSP MessageType 1 is Error, 2 Warning.)
    complaints = [
        m["message"] for m in report["server_messages"] if m["type"] in (1, 2) and "settings" in m["message"].lower()
    ]
    assert complaints == [], complaints

    # setup() made the commands and the documented keymap.
    assert report["commands"] == {"search": True, "fill": True, "reindex": True}
    assert report["keymap"] is True

    # FileType started the server and attached the buffer; the root is the repository.
    assert report["filetype"] == "python"
    assert report["client_name"] == "codemlm"
    assert report["attached"] is True
    assert Path(report["root_dir"]).name == "repo"
    assert {"codemlm.search", "codemlm.reindex", "codemlm.fillSelection"} <= set(report["server_commands"])

    # codemlm/status reached "ready" (after indexing) and the statusline helper shows it.
    assert report["status"]["state"] == "ready"
    assert report["statuses"][-1] == "ready"
    assert report["statusline"] == "codemlm: ready"

    # :CodemlmSearch put real hits in the quickfix list: the `distance` function of shapes.py
    # (the one in src/ or its copy in legacy/) is among the first results, with its line.
    assert report["quickfix_title"] == f"codemlm: {QUERY}"
    hits = report["quickfix"]
    assert hits, "empty quickfix list"
    top = [(h["path"], h["lnum"]) for h in hits[:3]]
    assert any(path.endswith("shapes.py") and lnum == 9 for path, lnum in top), hits[:3]
    assert all(h["lnum"] >= 1 and h["col"] >= 1 for h in hits)
    assert any("distance" in h["text"] for h in hits[:3])

    # search_ui = "select": the hits went to vim.ui.select, and choosing the first opened it.
    select = report["select"]
    assert select["prompt"] == f"codemlm: {QUERY}"
    assert select["count"] == len(hits)
    assert select["first"].startswith(f"{hits[0]['path']}:{hits[0]['lnum']}")
    assert report["select_opened"] == {"path": hits[0]["path"], "line": hits[0]["lnum"]}

    # :CodemlmReindex made the server index again and come back ready.
    assert report["statuses_after_reindex"][-1] == "ready"
    assert "reindex started" in " ".join(report["notifications"])

    # Completion through the plugin's client, at a hole the tiny model knows: the right body is
    # among the items (an empty list, or a list without it, fails).
    completion = report["completion"]
    assert "error" not in completion, completion
    assert "a - b" in completion["texts"], completion

    # Fill selection of a characterwise Visual selection (`math.hypot(...)` after `return `):
    # the server's workspace/applyEdit replaced exactly the selected text with the top candidate.
    assert report["visual"]["mode"] == "v"
    fill = report["fill"]
    assert fill["error"] is None
    assert fill["line_before"] == "    return math.hypot(x2 - x1, y2 - y1)"
    assert fill["candidates"], "fillSelection returned no candidate"
    assert fill["line_after"] == "    return " + fill["candidates"][0]["text"].split("\n")[0]


def test_neovim_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    # A Python that does not exist: the plugin must not hang, and tells the user the fix.
    proc, report = run_neovim(
        tmp_path,
        tmp_path / "no-model",
        CODEMLM_NVIM_PYTHON="/nonexistent/bin/python3",
        CODEMLM_NVIM_TIMEOUT_MS="3000",
    )
    assert proc.returncode == 1
    assert "timed out" in report["error"] and "initialize" in report["error"]
    # The user was told what is wrong and how to fix it.
    assert any("not executable" in n and "pip install" in n for n in report["notifications"]), report
