#!/usr/bin/env bash
# End-to-end test of the CodeMLM extension in real VS Code (code-server) driven by a real browser
# (Debian chromium through playwright-core), against the real codemlm language server.
#
#   editors/vscode/scripts/e2e.sh
#
# It packages the .vsix, installs it into a fresh code-server profile, opens a copy of
# tests/fixtures/multilang_repo, waits for the status bar to say the index is ready, runs
# "CodeMLM: Search Repository", opens a hit, asks for a completion, runs "CodeMLM: Fill Selection",
# checks each result on screen and saves screenshots to $CODEMLM_E2E_OUT
# (default editors/vscode/e2e-artifacts/). Exit status 0 when every check passed.
#
# Environment:
#   CODEMLM_E2E_PYTHON  Python with codemlm installed (default: <repo>/.venv/bin/python)
#   CODEMLM_E2E_MODEL   model directory (default: a tiny model trained here in ~20 s)
#   CODEMLM_E2E_HOME    where e2e-setup.sh installs code-server, Node 24, playwright-core
#   CODEMLM_E2E_OUT     screenshots and logs
#   CODEMLM_E2E_KEEP=1  keep the temporary profile and workspace
# Slow (first run installs code-server, ~8 minutes): not part of the default test run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXT_DIR="$(cd "$HERE/.." && pwd)"
REPO="$(cd "$EXT_DIR/../.." && pwd)"
E2E_HOME="${CODEMLM_E2E_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/codemlm-e2e}"
export CODEMLM_E2E_HOME="$E2E_HOME"
PYTHON="${CODEMLM_E2E_PYTHON:-$REPO/.venv/bin/python}"
OUT="${CODEMLM_E2E_OUT:-$EXT_DIR/e2e-artifacts}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

log() { echo "e2e: $*" >&2; }

"$PYTHON" -c 'import lsp_server.__main__, pygls, codemlm' || {
  log "$PYTHON cannot import the language server: bash scripts/setup-env.sh (or set CODEMLM_E2E_PYTHON)"
  exit 2
}

log "tools"
bash "$HERE/e2e-setup.sh" >&2
export PATH="$E2E_HOME/node_modules/node/bin:$PATH"
CODE_SERVER="$E2E_HOME/node_modules/.bin/code-server"

log "package the extension"
cd "$EXT_DIR"
[[ -d node_modules ]] || npm ci
npm run --silent package >&2
VSIX="$EXT_DIR/codemlm.vsix"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/codemlm-e2e.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${CODEMLM_E2E_KEEP:-0}" != 1 ]]; then rm -rf "$TMP"; else log "kept $TMP"; fi
}
trap cleanup EXIT

WORKSPACE="$TMP/multilang_repo"
cp -r "$REPO/tests/fixtures/multilang_repo" "$WORKSPACE"
# A file the tiny model knows by heart, with a hole at the end of line 6 (`return a - b`).
(cd "$REPO" && "$PYTHON" - "$WORKSPACE/e2e_infill.py") <<'PY'
import sys
from tests._tiny_model import SNIPPET
text = SNIPPET.replace("    return a - b\n", "    return a - \n", 1)
open(sys.argv[1], "w", encoding="utf-8").write(text)
PY

MODEL="${CODEMLM_E2E_MODEL:-}"
if [[ -z "$MODEL" ]]; then
  log "train the tiny test model"
  MODEL="$TMP/model"
  (cd "$REPO" && OMP_NUM_THREADS=1 nice "$PYTHON" - "$MODEL" <<'PY'
import sys
from pathlib import Path
from tests._tiny_model import tiny_model_dir

class Factory:  # the one method of pytest's TempPathFactory that tiny_model_dir uses
    def mktemp(self, name):
        path = Path(sys.argv[1])
        path.mkdir(parents=True, exist_ok=True)
        return path

print(tiny_model_dir(Factory()))
PY
  ) >&2
fi

USER_DATA="$TMP/user-data"
EXTENSIONS="$TMP/extensions"
mkdir -p "$USER_DATA/User" "$EXTENSIONS"
cat > "$USER_DATA/User/settings.json" <<JSON
{
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "editor.wordBasedSuggestions": "off",
  "editor.inlineSuggest.enabled": true,
  "chat.disableAIFeatures": true,
  "codemlm.interpreter": "$PYTHON",
  "codemlm.modelDir": "$MODEL",
  "codemlm.indexPath": "$TMP/index.sqlite"
}
JSON

# code-server runs extensions on the "remote" side, where machine-scoped settings such as
# codemlm.interpreter are read from the Machine settings file, not the User one.
mkdir -p "$USER_DATA/Machine"
cp "$USER_DATA/User/settings.json" "$USER_DATA/Machine/settings.json"

log "install $VSIX"
"$CODE_SERVER" --user-data-dir "$USER_DATA" --extensions-dir "$EXTENSIONS" --install-extension "$VSIX" >&2

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "code-server on 127.0.0.1:$PORT"
CODEMLM_CACHE_DIR="$TMP/cache" OMP_NUM_THREADS=1 "$CODE_SERVER" \
  --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
  --disable-workspace-trust --user-data-dir "$USER_DATA" --extensions-dir "$EXTENSIONS" \
  "$WORKSPACE" > "$OUT/code-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=2)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { log "code-server died, see $OUT/code-server.log"; exit 1; }
  sleep 1
done

log "drive it"
set +e
NODE_PATH="$E2E_HOME/node_modules" node "$HERE/e2e-driver.mjs" \
  --url "http://127.0.0.1:$PORT/?folder=$WORKSPACE" --out "$OUT" --workspace "$WORKSPACE" \
  --machine-settings "$USER_DATA/Machine/settings.json"
status=$?
set -e
# The extension's own log (CodeMLM output channel) and the server's stderr live in the profile.
find "$USER_DATA/logs" -name '*CodeMLM*' -exec cp {} "$OUT/" \; 2>/dev/null || true
if [[ $status -eq 0 ]]; then log "PASSED (screenshots in $OUT)"; else log "FAILED (exit $status; screenshots and logs in $OUT)"; fi
exit $status
