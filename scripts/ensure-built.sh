#!/bin/sh
# Installs dependencies when missing or stale, then compiles. Used by `npm run up` / `npm test`
# so that the README's quick start works on a fresh clone with one command each.
set -e
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "crossmesh: installing dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund >&2
fi
npx --no-install tsc -p tsconfig.json
