#!/usr/bin/env bash
# Held-out code for masked-token accuracy (`codemlm eval mlm`), never in a training corpus
# (benchmarks/data/HELDOUT.md): boltons 25.0.0 (Python) and dayjs 1.11.13's ES modules (JS).
#   bash benchmarks/fetch_heldout_mlm.sh [DIR]   # default ~/.cache/codemlm/bench/heldout_mlm
set -euo pipefail
out="${1:-$HOME/.cache/codemlm/bench/heldout_mlm}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
python3 -m pip download -q --no-deps -d "$tmp" boltons==25.0.0
python3 -m zipfile -e "$tmp"/boltons-25.0.0-py3-none-any.whl "$tmp/py"
rm -rf "$out/boltons" && cp -r "$tmp/py/boltons" "$out/boltons"
(cd "$tmp" && npm pack -q dayjs@1.11.13 >/dev/null && tar xzf dayjs-1.11.13.tgz)
# The library's own modules and plugins; the 140 locale tables are data, not code.
rm -rf "$out/dayjs" && cp -r "$tmp/package/esm" "$out/dayjs" && rm -rf "$out/dayjs/locale"
echo "held-out code in $out: $(find "$out" -type f \( -name '*.py' -o -name '*.js' \) | wc -l) files"
