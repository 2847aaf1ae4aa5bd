#!/usr/bin/env bash
# Create (or reuse) .venv and install codemlm into it with the given extras.
# torch comes first and pinned so pip never pulls a multi-GB CUDA build on a CPU machine;
# set CODEMLM_TORCH to another requirement (e.g. "torch==2.13.0+cu128") for a GPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${CODEMLM_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[${extras}]"
