#!/usr/bin/env bash
# A call that drops an xffl_status must not compile (common/status.h, XFFL_MUST_USE):
# the dropping call and its (void)-cast form fail the build with -Werror, the same call
# with its status used or passed to xffl_ignore() builds, and every prototype in the
# tree that returns xffl_status carries the attribute (so the rule holds everywhere,
# not just for the function tried here).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CC=${CC:-cc}
HDF5_INC=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I. $HDF5_INC -c -o /dev/null)

body() { # $1: the statement made of the call
  printf '#include "common/util.h"\n#include "storage/store.h"\nint main(void)\n{\n    %s\n    return 0;\n}\n' "$1"
}
try() { # $1 name, $2 statement -> 0 when it compiles
  body "$2" > "$tmp/$1.c"
  "$CC" "${flags[@]}" "$tmp/$1.c" 2> "$tmp/$1.err"
}

try used 'if (xffl_mkdirs("/nonexistent/x") != XFFL_OK) return 1;' || { cat "$tmp/used.err"; fail "a call whose status is used does not compile"; }
try ignored 'xffl_ignore(xffl_mkdirs("/nonexistent/x"));' || { cat "$tmp/ignored.err"; fail "xffl_ignore() does not compile"; }
for form in 'xffl_mkdirs("/nonexistent/x");' '(void)xffl_mkdirs("/nonexistent/x");' 'store_delete(NULL, "k");'; do
  if try dropped "$form"; then fail "a dropped xffl_status compiled: $form"; fi
  grep -q 'warn_unused_result\|unused-result' "$tmp/dropped.err" || { cat "$tmp/dropped.err"; fail "'$form' failed for another reason than the dropped status"; }
done
echo "dropped statuses fail the build; used and xffl_ignore()d ones compile"

# Every header prototype returning xffl_status is marked.
unmarked=$(git ls-files '*.h' | grep -v '^common/status.h$' | xargs grep -nE '^(static (inline )?)?xffl_status [a-z_0-9]+\(' || true)
[ -z "$unmarked" ] || { echo "$unmarked"; fail "prototypes above return xffl_status without XFFL_MUST_USE"; }
unmarked=$(git ls-files '*.c' '*.cu' | grep -vE '^(tests|bench)/' | xargs grep -nE '^static (inline )?xffl_status [a-z_0-9]+\(' || true)
[ -z "$unmarked" ] || { echo "$unmarked"; fail "static functions above return xffl_status without XFFL_MUST_USE"; }
echo "every function returning xffl_status is XFFL_MUST_USE"
