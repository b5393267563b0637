#!/usr/bin/env bash
# The S3 test matrix (issue 17, "What it must show" 1): each suite on each backend over
# each protocol, one line per cell and a closing "N passed, N failed".
#   tests/s3/matrix.sh [--sig v2,v4] [--proto http,https] [--suites s3,fed,faults]
# Suites:  s3      tests/it/test-s3.sh: the CUnit store suite on s3://, s3cmd interop both
#                  ways, xffl ls/cp/pull/verify on s3, the quick error paths
#          fed     tests/it/test-fed-s3.sh: the federation flow on s3
#          faults  tests/faults/run.sh (make test-faults): kill/restart mid-transfer, the
#                  fault-injecting proxy, server down, altered object
# Cells:   v4      XFFL_S3_SIGNATURE=v4 behind tests/s3/sigv4proxy.py, which verifies every
#                  V4 signature (s3rver does not) and counts what it verified; s3cmd speaks V4
#          v2      XFFL_S3_SIGNATURE=v2 (libs3) straight to s3rver, which checks V2; s3cmd V2
#          https   stunnel4 in front, with a test CA made by tests/s3/mkcerts.sh. V4 trusts it
#                  through AWS_CA_BUNDLE; V2 through the system store: it runs in a private
#                  mount namespace (unshare -m) where a bundle of the system CAs plus the test
#                  CA is bind-mounted over /etc/ssl/certs/ca-certificates.crt, so the
#                  machine's trust store is never touched (tests/it/test-s3-bad-inputs.sh
#                  covers AWS_CA_BUNDLE on V2 and the system store on V4)
# Environment: XFFL_BUILD (default build). Each cell gets its own XDG_CONFIG_HOME (keys, pins).
set -u
cd "$(dirname "$0")/../.."
sigs=v2,v4; protos=http,https; suites=s3,fed
while [ $# -gt 0 ]; do
  case $1 in
    --sig) sigs=$2; shift 2 ;;
    --proto) protos=$2; shift 2 ;;
    --suites) suites=$2; shift 2 ;;
    *) echo "matrix.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export XFFL_BUILD=${XFFL_BUILD:-build}
export HDF5_PLUGIN_PATH=$PWD/$XFFL_BUILD/plugins
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
log=$(mktemp -d "${TMPDIR:-/tmp}/xffl-s3matrix-XXXXXX")
trap 'rm -rf "$log"' EXIT
certs=$log/tls
tests/s3/mkcerts.sh "$certs" || { echo "FAIL: could not make the test certificates"; exit 1; }
script_of() {
  case $1 in
    s3) echo tests/it/test-s3.sh ;;
    fed) echo tests/it/test-fed-s3.sh ;;
    faults) echo tests/faults/run.sh ;;
    *) echo "matrix.sh: unknown suite $1" >&2; exit 2 ;;
  esac
}
# runs "$@" with the system bundle replaced by system CAs + the test CA, in this process's
# own mount namespace only
with_test_ca_in_system_store() {
  unshare -m --propagation private -- sh -c \
    'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"' "$certs/system-plus-test.pem" "$@"
}
passed=0; failed=0; skipped=0
for suite in ${suites//,/ }; do
  script=$(script_of "$suite") || exit 2
  for sig in ${sigs//,/ }; do
    for proto in ${protos//,/ }; do
      cell="$suite $sig $proto"
      name=${cell// /-}
      tls=0; [ "$proto" = https ] && tls=1
      runner=() sysca=0
      if [ "$proto" = https ] && [ "$sig" = v2 ]; then
        if ! with_test_ca_in_system_store true 2>"$log/$name.unshare"; then
          echo "== $cell: SKIP (no private mount namespace here: $(head -1 "$log/$name.unshare"))"
          skipped=$((skipped + 1)); continue
        fi
        runner=(with_test_ca_in_system_store) sysca=1
      fi
      start=$(date +%s)
      if XFFL_S3_SIGNATURE=$sig XFFL_S3_TEST_TLS=$tls XFFL_S3_TEST_TLS_DIR=$certs XFFL_S3_TEST_SYSTEM_CA=$sysca \
         XDG_CONFIG_HOME=$log/config-$name "${runner[@]}" bash "$script" >"$log/$name.out" 2>&1; then
        res=PASS; passed=$((passed + 1))
      else
        res=FAIL; failed=$((failed + 1))
      fi
      echo "== $cell: $res ($(( $(date +%s) - start ))s, $(grep -c '^PASS' "$log/$name.out") checks passed)"
      grep -E '^(SKIP|note):' "$log/$name.out" | sed 's/^/   /'
      if [ $res = FAIL ]; then grep -E '^FAIL' "$log/$name.out" | sed 's/^/   /'; tail -25 "$log/$name.out" | sed 's/^/   | /'; fi
    done
  done
done
echo
echo "$passed passed, $failed failed$([ $skipped -gt 0 ] && echo ", $skipped skipped")"
[ $failed -eq 0 ]
