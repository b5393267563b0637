#!/usr/bin/env bash
# Installs the S3 test server (npm s3rver 3.7.1) into tests/s3/node_modules (git-ignored)
# and applies two patches:
#   s3rver-libs3-path-style.patch: libs3 2.0 signs path-style bucket requests as
#     "/bucket/", s3rver canonicalizes "/bucket", so bucket list/create would fail with
#     SignatureDoesNotMatch.
#   s3rver-libs3-vhost.patch: the same for virtual-hosted bucket requests (GET / on
#     <bucket>.s3.localhost), which S3's V2 rules sign as "/bucket/" too.
#   s3rver-atomic-put.patch: s3rver wrote an object's (and a multipart part's) body in
#     place, so an upload cut midway (client killed, connection dropped, or the verifying
#     proxy refusing a body whose SHA-256 does not match) left a partial object visible;
#     S3 never does. It now writes a temporary file and renames it once the body is whole.
# Idempotent. Exit 0 ready, 3 when it cannot be installed here
# (no node/npm, no registry): callers print SKIP.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mod=$here/node_modules/s3rver
auth=$mod/lib/middleware/authentication.js
command -v node >/dev/null || { echo "node not found" >&2; exit 3; }
# several test scripts may start at once: one installs, the others wait for it
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/xffl-s3rver-install.lock"
  flock -w 300 9 || { echo "waited 300 s for another s3rver install" >&2; exit 3; }
fi
if ! grep -q '"version": "3.7.1"' "$mod/package.json" 2>/dev/null; then
  command -v npm >/dev/null || { echo "npm not found" >&2; exit 3; }
  echo "installing s3rver@3.7.1 into $here/node_modules (package-lock.json pins its dependencies)" >&2
  npm ci --prefix "$here" --no-audit --no-fund >&2 \
    || npm install --prefix "$here" --no-audit --no-fund --no-save s3rver@3.7.1 >&2 \
    || { echo "npm install s3rver failed" >&2; exit 3; }
fi
if ! grep -q 'xffl: libs3 signs' "$auth"; then
  patch -s -p1 -d "$mod" < "$here/s3rver-libs3-path-style.patch" || { echo "patching $auth failed" >&2; exit 1; }
fi
if ! grep -q 'virtual-hosted bucket requests (GET / on' "$auth"; then
  patch -s -p1 -d "$mod" < "$here/s3rver-libs3-vhost.patch" || { echo "patching $auth (vhost) failed" >&2; exit 1; }
fi
fsstore=$mod/lib/stores/filesystem.js
if ! grep -q 'xffl: writes a Buffer or a stream' "$fsstore"; then
  patch -s -p1 -d "$mod" < "$here/s3rver-atomic-put.patch" || { echo "patching $fsstore failed" >&2; exit 1; }
fi
exit 0
