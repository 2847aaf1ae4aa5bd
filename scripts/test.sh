#!/usr/bin/env bash
# The project's test command: lint, types, then the test suite. pytest exits 5 when it
# collects no tests; that is a failure here, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check .
mypy
python -m pytest -q "$@"
