#!/usr/bin/env bash
# Node test tools (openapi-typescript, typescript) from the npm registry, pinned by
# tools/node/package-lock.json, into tools/node/node_modules. Used by
# tests/http/test_openapi_generators.py; without node/npm it says so (that test then skips
# locally, and fails under CI=true).
set -euo pipefail
cd "$(dirname "$0")/../tools/node"
if ! command -v npm >/dev/null 2>&1; then
  echo "note: npm not found: the TypeScript generator test needs node and npm (apt-get install nodejs npm)" >&2
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
