#!/usr/bin/python3
"""A signature-V4-verifying HTTP proxy in front of s3rver (tests only).

s3rver 3.7.1 checks signature V2 but lets any known access key through with a V4
signature (its authentication.js: "Signature version 4 calculation is unimplemented"), so a
V4 client tested against it alone cannot fail. This proxy recomputes every V4-signed
request's signature with botocore's SigV4 code (Debian's python3-botocore: the canonical
headers, query string, string to sign and signing key are botocore's own functions) and
answers as S3 does when it does not match:

  403 InvalidAccessKeyId      unknown access key; or a session token required and missing
  403 SignatureDoesNotMatch   wrong secret, or anything signed differently from what was sent
  400 InvalidToken            wrong session token (or one sent where none is issued)
  400 ExpiredToken            the right token, declared expired (--token-expired)
  403 RequestTimeTooSkewed    x-amz-date (or Date) more than --max-skew seconds off our clock
  400 AuthorizationHeaderMalformed  a credential scope for another region, service or day
  400 XAmzContentSHA256Mismatch     a body whose SHA-256 is not its x-amz-content-sha256
  403 AccessDenied            x-amz-* headers sent unsigned; anonymous requests (unless
                              --allow-anonymous)

Requests that pass, and signature-V2 requests (s3rver verifies those itself), go on to
the upstream s3rver unchanged (bodies streamed in 1 MiB pieces, both ways; keep-alive on
both sides). A hashed body is checked while it streams; its last piece is held back until
the digest is known, and a mismatch aborts the upstream request before it completes, so
s3rver never stores it. "Expect: 100-continue" is answered only after the signature
verified, as S3 does. Threaded: one thread per client connection.

Its clock is the machine's plus --clock-offset seconds, so a test can also make a
correctly signed request look 20 minutes old to the server.

  sigv4proxy.py --upstream 127.0.0.1:PORT [--port 0] [--key AKID:SECRET ...] [--region R]
                [--token T [--token-expired]] [--clock-offset S] [--max-skew 900]
                [--allow-anonymous] [--log FILE]

Prints "LISTENING <port>" on stdout once it accepts connections. Each request gets one
log line: method, path, verdict (v4-ok, v2-pass, anon-pass or the error code), status.
"""
import argparse
import calendar
import datetime
import email.utils
import hashlib
import hmac
import http.client
import os
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

PIECE = 1 << 20
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
DRAIN_LIMIT = 64 << 20  # unread request bodies up to this size are read and discarded


class S3Fail(Exception):
    """An S3 error response: status, code, message, extra XML fields."""

    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class Config:
    keys = {}          # access key id -> secret
    region = "us-east-1"
    token = None       # required session token (None: none issued)
    token_expired = False
    clock_offset = 0.0
    max_skew = 900.0
    allow_anonymous = False
    upstream = ("127.0.0.1", 0)
    log = None
    log_lock = threading.Lock()


def now():
    return time.time() + Config.clock_offset


def parse_amz_date(headers):
    """The request time: x-amz-date (ISO 8601 basic) or Date (RFC 1123), as (epoch, stamp)."""
    v = headers.get("x-amz-date")
    if v:
        try:
            dt = datetime.datetime.strptime(v.strip(), "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise S3Fail(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        return calendar.timegm(dt.timetuple()), v.strip()
    v = headers.get("date")
    if v:
        t = email.utils.parsedate_tz(v)
        if t:
            epoch = email.utils.mktime_tz(t)
            return epoch, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))
    raise S3Fail(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...' -> dict."""
    rest = value[len("AWS4-HMAC-SHA256"):].strip()
    parts = {}
    for comp in rest.split(","):
        k, sep, v = comp.strip().partition("=")
        if not sep:
            raise S3Fail(400, "AuthorizationHeaderMalformed",
                         "The authorization header is malformed; the authorization component "
                         f"\"{comp.strip()}\" is malformed.")
        parts[k] = v
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in parts:
            raise S3Fail(400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; missing {name}.")
    return parts


def query_params(raw):
    """The request's query as decoded (key, value) pairs, in order."""
    out = []
    if raw:
        for pair in raw.split("&"):
            if pair == "":
                continue
            k, _, v = pair.partition("=")
            out.append((unquote(k), unquote(v)))
    return out


def verify_v4(method, raw_path, raw_query, headers):
    """Checks a header-signed V4 request; returns (access key, x-amz-content-sha256 value)."""
    auth = parse_authorization(headers["authorization"])
    cred = auth["Credential"].split("/")
    if len(cred) != 5:
        raise S3Fail(400, "AuthorizationHeaderMalformed",
                     f"The authorization header is malformed; the Credential is mal-formed; "
                     f"expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    akid, day, region, service, term = cred
    if akid not in Config.keys:
        raise S3Fail(403, "InvalidAccessKeyId",
                     "The AWS Access Key Id you provided does not exist in our records.",
                     AWSAccessKeyId=akid)
    if region != Config.region:
        raise S3Fail(400, "AuthorizationHeaderMalformed",
                     f"The authorization header is malformed; the region '{region}' is wrong; "
                     f"expecting '{Config.region}'", Region=Config.region)
    if service != "s3" or term != "aws4_request":
        raise S3Fail(400, "AuthorizationHeaderMalformed",
                     f"The authorization header is malformed; incorrect service \"{service}\" "
                     f"or terminator \"{term}\"; expecting \"s3\" and \"aws4_request\".")
    epoch, stamp = parse_amz_date(headers)
    if day != stamp[:8]:
        raise S3Fail(400, "AuthorizationHeaderMalformed",
                     f"The authorization header is malformed; Invalid credential date \"{day}\". "
                     "This date is not the same as X-Amz-Date: \"" + stamp[:8] + "\".")
    server = now()
    if abs(server - epoch) > Config.max_skew:
        raise S3Fail(403, "RequestTimeTooSkewed",
                     "The difference between the request time and the current time is too large.",
                     RequestTime=headers.get("x-amz-date") or headers.get("date"),
                     ServerTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(server)),
                     MaxAllowedSkewMilliseconds=str(int(Config.max_skew * 1000)))
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise S3Fail(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    payload = payload.strip()
    hexdigest = len(payload) == 64 and all(c in "0123456789abcdefABCDEF" for c in payload)
    if payload == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
        raise S3Fail(501, "NotImplemented", "aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) uploads "
                     "are not supported by this test proxy")
    if not hexdigest and payload != "UNSIGNED-PAYLOAD":
        raise S3Fail(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                     "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                     ArgumentName="x-amz-content-sha256", ArgumentValue=payload)
    signed = [h.strip().lower() for h in auth["SignedHeaders"].split(";") if h.strip()]
    if "host" not in signed:
        raise S3Fail(400, "AuthorizationHeaderMalformed",
                     "The authorization header is malformed; SignedHeaders must include host.")
    unsigned_amz = sorted({k.lower() for k in headers.keys()
                           if k.lower().startswith("x-amz-") and k.lower() not in signed})
    if unsigned_amz:
        raise S3Fail(403, "AccessDenied", "There were headers present in the request which were not signed",
                     HeadersNotSigned=", ".join(unsigned_amz))
    # botocore computes the canonical request, string to sign and signature
    token = headers.get("x-amz-security-token")
    creds = Credentials(akid, Config.keys[akid], token)
    signer = S3SigV4Auth(creds, "s3", region)
    hmap = HTTPHeaders()
    for name in signed:
        for v in headers.get_all(name) or []:
            hmap[name] = v
    path = quote(unquote(raw_path), safe="/~")
    canonical = "\n".join([
        method.upper(), path,
        signer._canonical_query_string_params(query_params(raw_query)),
        signer.canonical_headers(hmap) + "\n",
        signer.signed_headers(hmap),
        payload])
    req = AWSRequest(method=method, url="http://" + (headers.get("host") or "") + path)
    req.context["timestamp"] = stamp
    sts = signer.string_to_sign(req, canonical)
    expected = signer.signature(sts, req)
    if not hmac.compare_digest(expected, auth["Signature"].strip()):
        raise S3Fail(403, "SignatureDoesNotMatch",
                     "The request signature we calculated does not match the signature you provided. "
                     "Check your key and signing method.",
                     AWSAccessKeyId=akid, StringToSign=sts, SignatureProvided=auth["Signature"].strip(),
                     CanonicalRequest=canonical)
    # session tokens: checked once the request is known to be signed with the right secret
    if Config.token is None:
        if token is not None:
            raise S3Fail(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    elif token is None:
        raise S3Fail(403, "InvalidAccessKeyId",
                     "The AWS Access Key Id you provided does not exist in our records.",
                     AWSAccessKeyId=akid)
    elif not hmac.compare_digest(token.strip(), Config.token):
        raise S3Fail(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    elif Config.token_expired:
        raise S3Fail(400, "ExpiredToken", "The provided token has expired.")
    return akid, (payload.lower() if hexdigest else None)


def error_xml(fail, resource, rid):
    fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fail.extra.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fail.code}</Code><Message>{escape(fail.message)}</Message>{fields}"
            f"<Resource>{escape(resource)}</Resource><RequestId>{rid}</RequestId>"
            "<HostId>xffl-sigv4proxy</HostId></Error>").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "xffl-sigv4proxy"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = None

    def finish(self):
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def date_time_string(self, timestamp=None):  # the Date of our answers: our (offset) clock
        return email.utils.formatdate(now() if timestamp is None else timestamp, usegmt=True)

    def log_request(self, code="-", size="-"):  # the --log line says it
        pass

    def log_message(self, fmt, *args):  # http.server's own lines: errors only, to stderr
        sys.stderr.write("sigv4proxy: " + (fmt % args) + "\n")

    def log_line(self, verdict, status):
        if Config.log is None:
            return
        with Config.log_lock:
            Config.log.write(f"{time.strftime('%H:%M:%S')} {self.command} {self.path} {verdict} {status}\n")
            Config.log.flush()

    def parse_request(self):
        self.expect_continue = False
        return super().parse_request()

    def handle_expect_100(self):
        # answered (or not) once the signature verified: do_any sends "100 Continue"
        self.expect_continue = True
        return True

    # ---- the request body, as it arrives (Content-Length or chunked)
    def body_pieces(self):
        te = (self.headers.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    b = self.rfile.read(min(left, PIECE))
                    if not b:
                        raise ConnectionError("client closed mid-body")
                    left -= len(b)
                    yield b
                self.rfile.readline(3)
        n = int(self.headers.get("content-length") or 0)
        while n:
            b = self.rfile.read(min(n, PIECE))
            if not b:
                raise ConnectionError("client closed mid-body")
            n -= len(b)
            yield b

    def has_body(self):
        return (int(self.headers.get("content-length") or 0) > 0
                or "chunked" in (self.headers.get("transfer-encoding") or "").lower())

    def send_error_xml(self, fail, body_pending):
        rid = uuid.uuid4().hex[:16].upper()
        body = error_xml(fail, self.path.split("?", 1)[0], rid)
        if body_pending:
            # the client may still be sending: read (and drop) a small body, else close
            if self.expect_continue:
                self.close_connection = True
            else:
                n = int(self.headers.get("content-length") or -1)
                if 0 <= n <= DRAIN_LIMIT:
                    try:
                        for _ in self.body_pieces():
                            pass
                    except (OSError, ConnectionError, ValueError):
                        self.close_connection = True
                else:
                    self.close_connection = True
        self.send_response(fail.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", rid)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
        else:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_line(fail.code, fail.status)

    def connect_upstream(self):
        if self.upstream is None:
            c = http.client.HTTPConnection(*Config.upstream, timeout=600)
            c.connect()
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.upstream = c
        return self.upstream

    def drop_upstream(self):
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def do_any(self):
        raw_path, _, raw_query = self.path.partition("?")
        auth = self.headers.get("authorization") or ""
        qkeys = {k for k, _ in query_params(raw_query)}
        digest = None
        try:
            if auth.startswith("AWS4-HMAC-SHA256"):
                _, digest = verify_v4(self.command, raw_path, raw_query, self.headers)
                verdict = "v4-ok"
            elif "X-Amz-Algorithm" in qkeys:
                raise S3Fail(501, "NotImplemented", "presigned signature-V4 URLs are not verified by this "
                             "test proxy")
            elif auth.startswith("AWS ") or "Signature" in qkeys:
                verdict = "v2-pass"  # s3rver verifies signature V2 itself
            elif auth:
                raise S3Fail(400, "InvalidArgument", "Unsupported Authorization Type",
                             ArgumentName="Authorization")
            elif Config.allow_anonymous:
                verdict = "anon-pass"
            else:
                raise S3Fail(403, "AccessDenied", "Access Denied (anonymous request)")
        except S3Fail as f:
            self.send_error_xml(f, self.has_body())
            return
        self.forward(verdict, digest)

    def forward(self, verdict, digest):
        body = self.has_body()
        chunked_in = "chunked" in (self.headers.get("transfer-encoding") or "").lower()
        sent_any = False
        try:
            for attempt in (0, 1):  # a kept-alive upstream connection may have been closed by now
                try:
                    up = self.connect_upstream()
                    up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in HOP_BY_HOP:
                            up.putheader(k, v)
                    if chunked_in:
                        up.putheader("Transfer-Encoding", "chunked")
                    up.endheaders()
                    break
                except (OSError, http.client.HTTPException):
                    self.drop_upstream()
                    if attempt:
                        raise
            if body and self.expect_continue:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if body:
                h = hashlib.sha256() if digest else None
                held = None
                for piece in self.body_pieces():
                    if h:
                        h.update(piece)
                    if held is not None:
                        self.send_up(up, held, chunked_in)
                    held = piece
                if h and h.hexdigest() != digest:
                    self.drop_upstream()  # the upstream request never completes: nothing stored
                    self.send_error_xml(S3Fail(400, "XAmzContentSHA256Mismatch",
                                               "The provided 'x-amz-content-sha256' header does not match "
                                               "what was computed.", ClientComputedContentSHA256=digest,
                                               S3ComputedContentSHA256=h.hexdigest()), False)
                    return
                if held is not None:
                    self.send_up(up, held, chunked_in)
                if chunked_in:
                    up.send(b"0\r\n\r\n")
            elif digest and digest != EMPTY_SHA256:
                self.send_error_xml(S3Fail(400, "XAmzContentSHA256Mismatch",
                                           "The provided 'x-amz-content-sha256' header does not match "
                                           "what was computed.", ClientComputedContentSHA256=digest,
                                           S3ComputedContentSHA256=EMPTY_SHA256), False)
                self.drop_upstream()
                return
            resp = up.getresponse()
            self.send_response_only(resp.status, resp.reason)
            chunked_out = False
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            if self.command != "HEAD" and resp.getheader("content-length") is None and resp.status not in (204, 304):
                chunked_out = True
                self.send_header("Transfer-Encoding", "chunked")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            sent_any = True
            if self.command != "HEAD":
                buf = bytearray(PIECE)
                mv = memoryview(buf)
                while True:
                    n = resp.readinto(mv)
                    if not n:
                        break
                    if chunked_out:
                        self.wfile.write(b"%x\r\n" % n)
                        self.wfile.write(mv[:n])
                        self.wfile.write(b"\r\n")
                    else:
                        self.wfile.write(mv[:n])
                if chunked_out:
                    self.wfile.write(b"0\r\n\r\n")
                left = resp.length
                if left:  # the upstream closed before its Content-Length: the client must see it too
                    raise ConnectionError("upstream body truncated")
            if resp.will_close:
                self.drop_upstream()
            else:
                resp.close()
            self.log_line(verdict, resp.status)
        except (OSError, http.client.HTTPException, ConnectionError, ValueError) as e:
            self.drop_upstream()
            self.close_connection = True
            if not sent_any:
                try:
                    self.send_error_xml(S3Fail(503, "ServiceUnavailable",
                                               f"upstream s3 server unavailable: {e}"), False)
                except OSError:
                    pass
            else:
                self.log_line("aborted:" + type(e).__name__, 0)
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def send_up(up, piece, chunked):
        if chunked:
            up.send(b"%x\r\n" % len(piece))
            up.send(piece)
            up.send(b"\r\n")
        else:
            up.send(piece)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="host:port of s3rver")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--key", action="append", default=[], help="AKID:SECRET (repeatable); default S3RVER:S3RVER")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--token", default=None, help="the session token every request must carry")
    ap.add_argument("--token-expired", action="store_true", help="the token is known but expired")
    ap.add_argument("--clock-offset", type=float, default=0.0, help="seconds added to this machine's clock")
    ap.add_argument("--max-skew", type=float, default=900.0)
    ap.add_argument("--allow-anonymous", action="store_true")
    ap.add_argument("--log", default=None, help="one line per request")
    a = ap.parse_args()
    for k in a.key or ["S3RVER:S3RVER"]:
        akid, sep, secret = k.partition(":")
        if not sep:
            ap.error(f"--key {k}: expected AKID:SECRET")
        Config.keys[akid] = secret
    host, _, port = a.upstream.rpartition(":")
    Config.upstream = (host or "127.0.0.1", int(port))
    Config.region, Config.token, Config.token_expired = a.region, a.token, a.token_expired
    Config.clock_offset, Config.max_skew, Config.allow_anonymous = a.clock_offset, a.max_skew, a.allow_anonymous
    if a.log:
        Config.log = open(a.log, "a", buffering=1 << 16)
    srv = Server((a.bind, a.port), Handler)
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    main()
