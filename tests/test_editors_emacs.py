"""Emacs (eglot) as a real LSP client: editors/emacs/codemlm.el against the real codemlm server.

Runs ``emacs --batch -Q -l editors/emacs/test/test.el`` on a copy of the fixture repository with
a tiny trained model: eglot starts the server through codemlm.el's contact, the status
notification reaches the mode line, ``codemlm-search`` fills a grep-mode buffer, and
``codemlm-fill-selection`` gets the server's edit applied. Skipped without emacs + eglot
(``apt-get install emacs-nox elpa-eglot``; Emacs 29+ has eglot built in).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._tiny_model import tiny_model_dir

ROOT = Path(__file__).resolve().parent.parent
TEST_EL = ROOT / "editors" / "emacs" / "test" / "test.el"
FIXTURE_REPO = ROOT / "tests" / "fixtures" / "multilang_repo"
EMACS = shutil.which("emacs")


def _has_eglot() -> bool:
    if EMACS is None:
        return False
    probe = subprocess.run(
        [
            EMACS,
            "--batch",
            "-Q",
            "--eval",
            "(progn (require 'package)"
            ' (add-to-list (quote package-directory-list) "/usr/share/emacs/site-lisp/elpa")'
            " (package-initialize) (require 'eglot))",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


pytestmark = [
    pytest.mark.skipif(
        not _has_eglot(), reason="emacs with eglot is not installed (apt-get install emacs-nox elpa-eglot)"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("lsp_server.__main__") is None,
        reason="the language server (python -m lsp_server) is not installed in this environment",
    ),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def test_emacs_eglot_search_and_fill(tmp_path: Path, model_dir: Path) -> None:
    workspace = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, workspace)
    out = tmp_path / "emacs_report.json"
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "CODEMLM_EMACS_PYTHON": sys.executable,
        "CODEMLM_EMACS_WORKSPACE": str(workspace),
        "CODEMLM_EMACS_OUT": str(out),
        "CODEMLM_EMACS_MODEL": str(model_dir),
        "CODEMLM_EMACS_INDEX": str(tmp_path / "index.sqlite"),
        "CODEMLM_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    (tmp_path / "home").mkdir()
    assert EMACS is not None
    proc = subprocess.run(
        [EMACS, "--batch", "-Q", "-l", str(TEST_EL)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    assert report, f"no report from emacs (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}"
    assert "error" not in report, f"{report['error']}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0

    # eglot used codemlm.el's server class, and the status notification reached the mode line.
    assert report["major_mode"] == "python-mode"
    assert report["server_class"] == "codemlm-eglot-server"
    assert report["statuses"][-1] == "ready"
    assert report["mode_line"] == " codemlm:ready"

    # codemlm-search: a grep-mode buffer of `path:line:col: [kind] name  snippet` lines, with
    # the distance function (src/ or its copy in legacy/) among the first three.
    assert report["search_mode"] == "grep-mode"
    lines = [line for line in report["search_buffer"].splitlines() if re.match(r"^\S+:\d+:\d+: ", line)]
    assert len(lines) == report["count"] > 0
    assert any(
        re.match(r"^(src/geometry|legacy)/shapes\.py:9:1: \[function\] distance", line) for line in lines[:3]
    )

    # codemlm-fill-selection: the server's workspace/applyEdit replaced the region after
    # `return ` with the top candidate, and left the text before it alone.
    assert report["fill_before"] == "    return math.hypot(x2 - x1, y2 - y1)"
    assert report["fill_after"] == "    return " + report["fill_top"].split("\n")[0]


def test_codemlm_el_byte_compiles_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "codemlm.el"
    shutil.copy(ROOT / "editors" / "emacs" / "codemlm.el", source)
    assert EMACS is not None
    proc = subprocess.run(
        [
            EMACS,
            "--batch",
            "-Q",
            "--eval",
            "(progn (require 'package)"
            ' (add-to-list (quote package-directory-list) "/usr/share/emacs/site-lisp/elpa")'
            " (package-initialize) (setq byte-compile-error-on-warn t))",
            "-f",
            "batch-byte-compile",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "codemlm.elc").exists()
