#!/usr/bin/env bash
# Fetch the extra source used to train the shipped default model, beside the Python standard
# library: a few pure-Python packages and JavaScript/TypeScript packages, unpacked into a
# plain folder (outside node_modules/site-packages, which the corpus filter skips on purpose).
# None of these may be a held-out library of the evaluation sets (benchmarks/data/HELDOUT.md).
set -euo pipefail
out="${1:-data/default-src}"
mkdir -p "$out/wheels" "$out/py" "$out/js" "$out/npm"
python3 -m pip download -q --no-deps -d "$out/wheels" \
  flask==3.1.3 werkzeug==3.1.9 jinja2==3.1.6 pygments==2.21.0 packaging==26.3
for wheel in "$out"/wheels/*.whl; do
  name=$(basename "$wheel" .whl)
  mkdir -p "$out/py/$name" && python3 -m zipfile -e "$wheel" "$out/py/$name"
done
(cd "$out/npm" && npm init -y >/dev/null && npm install -q --ignore-scripts --no-audit --no-fund \
  lodash-es@4.18.1 express@4.22.3 rxjs@7.8.2 >/dev/null)
cp -r "$out/npm/node_modules/rxjs/src" "$out/js/rxjs"
cp -r "$out/npm/node_modules/lodash-es" "$out/js/lodash-es"
cp -r "$out/npm/node_modules/express/lib" "$out/js/express"
for pkg in body-parser send serve-static qs; do
  [ -d "$out/npm/node_modules/$pkg" ] && cp -r "$out/npm/node_modules/$pkg" "$out/js/$pkg"
done
rm -rf "$out/npm" "$out/wheels"
echo "default corpus sources in $out: $(find "$out" -type f | wc -l) files"
