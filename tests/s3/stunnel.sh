#!/usr/bin/env bash
# Starts stunnel4 on a free 127.0.0.1 port, terminating TLS for an HTTP server, and prints
# "PID PORT" (its log: DIR/stunnel-PORT.log). Stop it by that PID.
#   tests/s3/stunnel.sh --connect HOST:PORT --certs TLSDIR --dir DIR [--cert server|other-server]
# TLSDIR is made by tests/s3/mkcerts.sh when missing. Exit 3 without stunnel4.
set -u
here=$(cd "$(dirname "$0")" && pwd)
connect=""; certs=""; dir=""; cert=server
while [ $# -gt 0 ]; do
  case $1 in
    --connect) connect=$2; shift 2 ;;
    --certs) certs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    *) echo "stunnel.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$connect" ] && [ -n "$certs" ] && [ -n "$dir" ] || { echo "stunnel.sh: --connect, --certs and --dir are needed" >&2; exit 2; }
command -v stunnel4 >/dev/null || { echo "stunnel4 is not installed (scripts/install-deps)" >&2; exit 3; }
"$here/mkcerts.sh" "$certs" || exit 1
for _ in 1 2 3 4 5; do  # a free port picked here may be taken before stunnel binds it
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  conf=$dir/stunnel-$port.conf log=$dir/stunnel-$port.log
  cat >"$conf" <<CONF
foreground = yes
pid =
debug = notice
output = $log
[s3]
accept = 127.0.0.1:$port
connect = $connect
cert = $certs/$cert.pem
key = $certs/$cert.key
CONF
  : >"$log"
  stunnel4 "$conf" >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    if grep -q 'Configuration successful' "$log" 2>/dev/null \
       && /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),2).close()" 2>/dev/null; then
      echo "$pid $port"
      exit 0
    fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
done
echo "stunnel4 did not start (log $log):" >&2; cat "$log" >&2
exit 1
