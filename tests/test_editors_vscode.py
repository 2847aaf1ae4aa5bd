"""The VS Code extension: its mocha unit tests, its .vsix, and (marked e2e) real VS Code.

The unit tests and the package need editors/vscode/node_modules (``cd editors/vscode && npm
ci``); without it, or without npm, they are skipped. The e2e test runs
editors/vscode/scripts/e2e.sh (code-server + chromium, minutes) and only runs with ``-m e2e``.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "editors" / "vscode"
NPM = shutil.which("npm")

needs_node_modules = pytest.mark.skipif(
    NPM is None or not (EXT / "node_modules").is_dir(),
    reason="npm or editors/vscode/node_modules missing (cd editors/vscode && npm ci)",
)


MANIFEST = json.loads((EXT / "package.json").read_text(encoding="utf-8"))

# VS Code's own default keybindings an extension must not shadow (from VS Code's sources):
# on macOS ⌥⌘F is Replace; elsewhere Ctrl+H is Replace, Ctrl+F Find, Ctrl+Shift+F Search.
VSCODE_DEFAULT_KEYS = {
    "mac": {"cmd+alt+f", "cmd+f", "cmd+shift+f", "cmd+k", "cmd+p", "cmd+shift+p"},
    "key": {"ctrl+h", "ctrl+f", "ctrl+shift+f", "ctrl+k", "ctrl+p", "ctrl+shift+p"},
}


def test_manifest_activates_on_served_languages_only() -> None:
    events = MANIFEST["activationEvents"]
    # workspaceContains:**/*.py (or "*") would start the server, and its indexing, in nearly
    # every folder a user opens; commands activate the extension on their own (VS Code 1.74+).
    assert events and all(e.startswith("onLanguage:") for e in events), events
    assert {e.split(":", 1)[1] for e in events} >= {"python", "typescript", "go", "rust", "java", "c", "cpp"}


def test_manifest_keybindings_leave_vscode_defaults_alone() -> None:
    for binding in MANIFEST["contributes"]["keybindings"]:
        for platform, taken in VSCODE_DEFAULT_KEYS.items():
            key = binding.get(platform, binding["key"])
            assert key not in taken, (binding["command"], platform, key)


def test_manifest_has_icon_changelog_and_ui_editable_settings() -> None:
    icon = EXT / MANIFEST["icon"]
    data = icon.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)  # the Marketplace's minimum
    # The committed icon is what the script draws (edit the script, not the PNG).
    make_icon = runpy.run_path(str(EXT / "scripts" / "make_icon.py"))
    assert make_icon["render"]() == data
    changelog = (EXT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {MANIFEST['version']}" in changelog
    ignore = (EXT / ".vscodeignore").read_text(encoding="utf-8").split()
    assert {"!CHANGELOG.md", f"!{MANIFEST['icon']}"} <= set(ignore)
    for key, schema in MANIFEST["contributes"]["configuration"]["properties"].items():
        # ["string", "null"] types and null defaults can only be edited in settings.json.
        assert isinstance(schema["type"], str), key
        assert schema["default"] is not None, key
        assert "codemlm[" not in schema.get("description", ""), key


def npm(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    assert NPM is not None
    return subprocess.run([NPM, *args], cwd=EXT, capture_output=True, text=True, timeout=timeout, check=False)


@needs_node_modules
def test_mocha_unit_tests_pass() -> None:
    proc = npm("test")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # mocha's summary: "N passing" and no "N failing" line.
    assert re.search(r"^\s*\d+ passing", output, re.MULTILINE), output
    assert not re.search(r"^\s*\d+ failing", output, re.MULTILINE), output


@needs_node_modules
def test_package_builds_a_vsix_with_the_contributions() -> None:
    proc = npm("run", "package")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vsix = EXT / "codemlm.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        bundle = archive.read("extension/dist/extension.js").decode("utf-8")
    assert {
        "extension/dist/extension.js",
        "extension/package.json",
        "extension.vsixmanifest",
        "extension/changelog.md",  # vsce lower-cases the README and CHANGELOG names
        f"extension/{manifest['icon']}",
    } <= names
    # No sources, tests or node_modules in the package: the bundle carries the dependencies.
    assert not any(
        n.startswith(("extension/src/", "extension/test/", "extension/node_modules/")) for n in names
    )
    assert manifest["main"] == "./dist/extension.js"
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert commands == {
        "codemlm.ui.search",
        "codemlm.ui.fillSelection",
        "codemlm.ui.reindex",
        "codemlm.ui.restartServer",
        "codemlm.ui.showLog",
    }
    settings = set(manifest["contributes"]["configuration"]["properties"])
    assert {
        "codemlm.interpreter",
        "codemlm.modelDir",
        "codemlm.indexPath",
        "codemlm.completion.enabled",
        "codemlm.inlineCompletion.enabled",
        "codemlm.maxCandidates",
    } <= settings
    # The bundle starts the server the documented way and talks the documented protocol.
    for needle in ("lsp_server", "codemlm.search", "codemlm.fillSelection", "codemlm/status"):
        assert needle in bundle, needle


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed")
def test_vscode_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "CODEMLM_E2E_PYTHON": sys.executable, "CODEMLM_E2E_OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(EXT / "scripts" / "e2e.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    report = json.loads((tmp_path / "e2e-report.json").read_text(encoding="utf-8"))
    assert report and all(step["ok"] for step in report)
