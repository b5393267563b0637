# shellcheck shell=bash disable=SC2034
# A tiny two-facility federation for the Slurm tests (sourced after lib.sh): corpora packed
# from Debian's license texts (always on a Debian system), a file:// store, and helpers that
# drive it only through `xffl submit`.
fed_setup() { # dir local-steps
  local d=$1
  mkdir -p "$d/logs"
  "$XFFL" data pack /usr/share/common-licenses/GPL-3 --out "$d/data-leonardo" --name leonardo >/dev/null &&
  "$XFFL" data pack /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/MPL-2.0 \
      --out "$d/data-karolina" --name karolina >/dev/null &&
  "$XFFL" init --store "file://$d/store" --model tiny --facilities leonardo,karolina --local-steps "$2" >/dev/null 2>&1
}
# submit_train dir facility rounds [more submit flags]: prints the job ids, one a line.
submit_train() {
  local d=$1 f=$2 n=$3; shift 3
  "$XFFL" submit --scheduler slurm --role train --rounds "$n" --store "file://$d/store" --facility "$f" \
    --data "$d/data-$f/${f}_train_*.bin" --state "$d/state-$f" --partition "$f" --requeue-delay 2 \
    --deadline 600 --log-dir "$d/logs" "$@" -- --threads 1 2>>"$d/submit.err" | awk '{print $1}'
}
submit_aggregate() { # dir rounds [more submit flags]
  local d=$1 n=$2; shift 2
  "$XFFL" submit --scheduler slurm --role aggregate --rounds "$n" --store "file://$d/store" \
    --partition aggregation --requeue-delay 2 --deadline 600 --log-dir "$d/logs" "$@" 2>>"$d/submit.err" | awk '{print $1}'
}
# Every attempt directory of a facility in a round, e.g. "a1".
attempts() { (cd "$1/store/rounds/$(printf 'r%06d' "$2")/$3" 2>/dev/null && ls -d a* 2>/dev/null) | tr '\n' ' ' | sed 's/ $//'; }
has_version() { ls "$1/store/versions/$(printf 'v%06d' "$2")"/INDEX-* >/dev/null 2>&1; }
# "contributor <facility> <COMMIT key>" lines of a version's INDEX, facilities sorted.
contributors() { grep -h '^contributor ' "$1/store/versions/$(printf 'v%06d' "$2")"/INDEX-* 2>/dev/null | awk '{print $2}' | sort | tr '\n' ' ' | sed 's/ $//'; }
# xffl verify --all of the store; its stderr kept in dir/verify.err.
verify_all() { "$XFFL" verify --all --store "file://$1/store" >/dev/null 2>"$1/verify.err" || { sed 's/^/  | /' "$1/verify.err"; return 1; }; }
