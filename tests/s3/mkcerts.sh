#!/usr/bin/env bash
# Makes the TLS material of the S3 tests in DIR (created if missing; idempotent: kept when
# ca.pem is already there), with openssl, never touching the machine's trust store:
#   ca.pem, ca.key                  the test CA ("xffl test CA")
#   server.pem, server.key          the server certificate stunnel4 presents, signed by it, for
#                                   127.0.0.1, ::1, localhost, s3.localhost and *.s3.localhost
#                                   (virtual-hosted addressing: <bucket>.s3.localhost)
#   other-ca.pem, other-ca.key      a second, unrelated CA: a client that trusts only it must
#                                   refuse server.pem ("certificate from another CA")
#   other-server.pem, other-server.key  the same names signed by the other CA
#   system-plus-test.pem            the system bundle (/etc/ssl/certs/ca-certificates.crt)
#                                   followed by ca.pem: bind-mounted over the system bundle in a
#                                   private mount namespace (unshare -m) for clients that only
#                                   read the system store (libs3 2.0)
#   tests/s3/mkcerts.sh DIR
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -s ca.pem ] && [ -s server.pem ] && [ -s other-ca.pem ] && [ -s system-plus-test.pem ] && exit 0
command -v openssl >/dev/null || { echo "mkcerts: openssl not found" >&2; exit 3; }
days=30
# valid from two days ago where faketime is installed, so a client whose clock is set back
# (the "request signed 20 minutes ago" test runs one under faketime) still accepts them
ossl=(openssl)
command -v faketime >/dev/null && ossl=(faketime -f -2d openssl)
mkca() { # name subject
  "${ossl[@]}" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -days $days -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mkserver() { # name ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" >"$1.ext"
  "${ossl[@]}" x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days $days \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
mkca ca "xffl test CA"
mkserver server ca
mkca other-ca "xffl other test CA"
mkserver other-server other-ca
sys=/etc/ssl/certs/ca-certificates.crt
{ [ -r $sys ] && cat $sys; cat ca.pem; } >system-plus-test.pem
chmod 600 ./*.key
openssl verify -CAfile ca.pem server.pem >/dev/null
! openssl verify -CAfile other-ca.pem server.pem >/dev/null 2>&1
