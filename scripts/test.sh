#!/usr/bin/env bash
# The project's test command: install into .venv, then lint, types and the test suite.
# pytest exits 5 when it collects no tests; with `set -e` that fails the run, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bash scripts/setup-env.sh test
# The VS Code extension's unit tests and .vsix build run inside pytest when its packages are here.
if command -v npm >/dev/null 2>&1 && [ ! -d editors/vscode/node_modules ]; then
  (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error)
fi
.venv/bin/ruff check .
.venv/bin/mypy
# Import contracts (pyproject [tool.importlinter]): arrows point down, no cycles.
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest -q "$@"
