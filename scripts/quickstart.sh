#!/usr/bin/env bash
# Install codemlm into .venv and show it working on the shipped default model:
# index a repository (this one, or the path given), search it, complete a hole.
# Runs from the caller's directory, so a relative PATH means what the caller meant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trap 'echo; echo "quickstart: interrupted while installing; run the same command again to continue (what is installed stays installed)." >&2; exit 130' INT
(cd "$root" && bash scripts/setup-env.sh all)
trap - INT
exec "$root/.venv/bin/codemlm" quickstart "$@"
