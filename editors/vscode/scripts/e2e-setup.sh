#!/usr/bin/env bash
# Installs what the end-to-end test needs, outside the repository, once:
#   - Node 24 (npm package `node@24`; code-server refuses older Node),
#   - code-server (real VS Code in a browser; works offline),
#   - playwright-core (drives Debian's chromium; downloads no browser).
# Debian packages it needs (apt-get install -y ...): chromium libkrb5-dev libx11-dev
# libxkbfile-dev libsecret-1-dev pkg-config — the -dev ones build code-server's native modules.
# Idempotent: a second run with everything present returns at once.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"
E2E_HOME="${CODEMLM_E2E_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/codemlm-e2e}"
mkdir -p "$E2E_HOME"

missing=()
for pkg in chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "e2e-setup: missing Debian packages: ${missing[*]} (apt-get install them)" >&2
    exit 1
  fi
fi

cd "$E2E_HOME"
# The install scripts these tools need (node@24 fetches its binary package, code-server builds
# its native modules, argon2 among them) are allowed by name in the tools' own package.json:
# npm 11.16+ rejects `--allow-scripts` in a project install, and npm 12 runs no others.
grep -q '"allowScripts"' package.json 2>/dev/null || cat > package.json <<'JSON'
{
  "name": "codemlm-e2e-tools",
  "private": true,
  "allowScripts": { "node": true, "code-server": true, "argon2": true }
}
JSON

installed_version() { "$E2E_HOME/node_modules/.bin/code-server" --version 2>/dev/null | grep -oE '^[0-9]+\.[0-9]+\.[0-9]+' | head -1; }
# Node 24 first, then the rest with it on PATH: code-server's postinstall checks the `node` it
# runs under, which in one combined install is still the system's. The tools are saved in this
# directory's package.json, so the second install keeps the first.
if [[ ! -x node_modules/node/bin/node ]]; then
  nice -n 19 npm install --no-package-lock --no-audit --no-fund --foreground-scripts node@24
fi
export PATH="$E2E_HOME/node_modules/node/bin:$PATH"
if [[ ! -d node_modules/playwright-core ]] || [[ "$(installed_version)" != "$CODE_SERVER_VERSION" ]]; then
  # code-server builds its native modules with node-gyp: ~8 minutes on 2 cores, hence nice.
  nice -n 19 npm install --no-package-lock --no-audit --no-fund --foreground-scripts \
    "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION"
fi
echo "e2e-setup: node $(node --version), code-server $(installed_version)"
echo "e2e-setup: ready in $E2E_HOME"
