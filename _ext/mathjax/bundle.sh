#!/usr/bin/env bash
# Rebuild vendor/mathjax-node/mathjax-svg.js: the parts of MathJax that
# _ext/mathjax/render.js uses (entry.js), bundled into one file for Node.js.
# Needs npm and the npm registry; the build of the book itself needs neither.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../vendor/mathjax-node/mathjax-svg.js"
work="$(mktemp -d)"
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund mathjax-full@3.2.2 esbuild@0.28.2 >/dev/null
cp "$here/entry.js" .
npx esbuild entry.js --bundle --platform=node --format=cjs --minify \
  --legal-comments=eof --outfile="$out"
cp node_modules/mathjax-full/LICENSE "$(dirname "$out")/LICENSE"
sha256sum "$out"
