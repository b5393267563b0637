#!/usr/bin/env bash
# Installs npm's llama-tokenizer-js 1.2.2 (LLaMA-2's 32000 pieces and merge order, MIT)
# into tests/tokenizer/node_modules (git-ignored). Idempotent. Exit 0 ready, 3 when it
# cannot be installed here (no node/npm, no registry): the caller prints SKIP.
set -u
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "node not found" >&2; exit 3; }
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/xffl-tokenizer-install.lock"
  flock -w 300 9 || { echo "waited 300 s for another llama-tokenizer-js install" >&2; exit 3; }
fi
if ! grep -q '"version": "1.2.2"' "$here/node_modules/llama-tokenizer-js/package.json" 2>/dev/null; then
  command -v npm >/dev/null || { echo "npm not found" >&2; exit 3; }
  echo "installing llama-tokenizer-js@1.2.2 into $here/node_modules" >&2
  npm ci --prefix "$here" --no-audit --no-fund >&2 \
    || { echo "npm install llama-tokenizer-js failed" >&2; exit 3; }
fi
exit 0
