#!/usr/bin/env bash
# Install codemlm into .venv and show it working on the shipped default model:
# index a repository (this one, or the path given), search it, complete a hole.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh all
exec .venv/bin/codemlm quickstart "$@"
