"""editors/helix/languages.toml: valid TOML, the documented server command, and settings the
server accepts without a single problem (parsed by the server's own settings parser).

Helix itself is not packaged for Debian 12, so no Helix process runs here; Neovim and Emacs
cover real-client behaviour (tests/test_editors_neovim.py, tests/test_editors_emacs.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# tomllib is in the standard library from Python 3.11 on.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES_TOML = ROOT / "editors" / "helix" / "languages.toml"
SUPPORTED = {"python", "javascript", "typescript", "tsx", "jsx", "go", "rust", "java", "c", "cpp"}


@pytest.fixture(scope="module")
def config() -> dict:
    with LANGUAGES_TOML.open("rb") as handle:
        return tomllib.load(handle)


def test_server_command_is_the_documented_one(config: dict) -> None:
    server = config["language-server"]["codemlm"]
    assert server["command"] == "python3"
    assert server["args"] == ["-m", "lsp_server"]


def test_every_supported_language_lists_codemlm(config: dict) -> None:
    languages = {entry["name"]: entry for entry in config["language"]}
    assert set(languages) == SUPPORTED
    for name, entry in languages.items():
        servers = entry["language-servers"]
        assert "codemlm" in servers, name
        assert len(servers) >= 2, f"{name}: keep the language's usual server beside codemlm"


def test_settings_are_accepted_by_the_server(config: dict) -> None:
    # Imported here, not skipped when missing: the project's own server failing to import is a
    # failure of this test, never a reason to skip it.
    from lsp_server.options import parse_options

    options, problems = parse_options(config["language-server"]["codemlm"]["config"])
    assert problems == []
    assert options.max_candidates == 5
    assert options.completion_enabled and options.inline_completion_enabled


def test_the_configured_command_starts_the_server() -> None:
    # `python -m lsp_server --version` is the command line Helix runs, minus the stdio session.
    proc = subprocess.run(
        [sys.executable, "-m", "lsp_server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "codemlm-lsp" in proc.stdout
