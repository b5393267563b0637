#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for the store tests (stdlib only).

Sits on 127.0.0.1 in front of an S3 server (s3rver) and, for a chosen share of HTTP
requests, misbehaves the way a flaky network or an overloaded service does:

  reset     close the client connection with a TCP RST, before or after the server
            saw the request (a PUT may have landed although the client saw an error)
  503       answer 503 SlowDown / ServiceUnavailable without asking the server
  truncate  forward, then send the response head and only part of its body, then close
  stall     forward nothing and hold the connection silent (client must time out)
  flip      flip one byte of a PUT body on its way up or of a GET body on its way down

Usage: faultproxy.py --upstream HOST:PORT [--rate 0.25] [--stall-share 0.02]
                     [--seed N] [--stats FILE] [--stall-seconds 20]
Prints "LISTENING <port>" on stdout once ready; writes request/fault counts as JSON to
--stats after every request. Stop it with SIGTERM.
"""
import argparse
import json
import random
import signal
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
stats = {"requests": 0, "faults": 0, "reset": 0, "503": 0, "truncate": 0, "stall": 0, "flip": 0}


def save_stats(path):
    if not path:
        return
    # the whole write under the lock: connection threads share one temporary name, and
    # two of them truncating and renaming it at once left an empty or torn stats file
    import os
    with lock:
        tmp = path + ".part"
        with open(tmp, "w") as f:
            f.write(json.dumps(stats))
        os.replace(tmp, path)


def recv_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf, False
        buf += chunk
    return buf, True


def recv_exact(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            return buf, False
        buf += chunk
    return buf, True


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    return lines[0], headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def rst_close(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def count(kind):
    with lock:
        stats[kind] += 1
        stats["faults"] += 1


def forward(upstream, method, reqline, headers, body):
    """Sends one request upstream on a fresh connection; returns (status line + headers bytes, body)."""
    host, port = upstream
    up = socket.create_connection((host, port), timeout=120)
    try:
        out = [reqline]
        for k, v in headers:
            if k.lower() in ("expect", "connection"):
                continue
            out.append("%s: %s" % (k, v))
        out.append("Connection: close")
        up.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
        buf, ok = recv_until(up, b"", b"\r\n\r\n")
        if not ok:
            raise ConnectionError("upstream closed before a response")
        head, _, rest = buf.partition(b"\r\n\r\n")
        status, rheaders = parse_head(head)
        code = int(status.split()[1])
        length = header(rheaders, "content-length")
        if method == "HEAD" or code in (204, 304) or (100 <= code < 200):
            rbody = b""
        elif length is not None:
            rbody, _ = recv_exact(up, rest, int(length))
        else:
            rbody = rest
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                rbody += chunk
            rheaders = [(k, v) for k, v in rheaders if k.lower() != "transfer-encoding"]
            rheaders.append(("Content-Length", str(len(rbody))))
        return status, rheaders, rbody
    finally:
        up.close()


def respond(client, status, rheaders, body, keep):
    lines = [status]
    for k, v in rheaders:
        if k.lower() == "connection":
            continue
        lines.append("%s: %s" % (k, v))
    lines.append("Connection: %s" % ("keep-alive" if keep else "close"))
    client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def handle(client, args, rng):
    buf = b""
    try:
        while True:
            buf, ok = recv_until(client, buf, b"\r\n\r\n")
            if not ok:
                return
            head, _, buf = buf.partition(b"\r\n\r\n")
            reqline, headers = parse_head(head)
            method = reqline.split()[0]
            length = int(header(headers, "content-length") or 0)
            if (header(headers, "expect") or "").lower() == "100-continue":
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            buf, ok = recv_exact(client, buf, length)
            if not ok:
                return
            body, buf = buf[:length], buf[length:]
            keep = (header(headers, "connection") or "").lower() != "close"
            with lock:
                stats["requests"] += 1
            fault = None
            if rng.random() < args.rate:
                r = rng.random()
                if r < args.stall_share and stats["stall"] < args.max_stalls:
                    fault = "stall"
                elif r < args.stall_share:
                    fault = rng.choice(args.kinds)
                elif r < args.stall_share + args.flip_share:
                    fault = "flip"
                else:
                    fault = rng.choice(args.kinds)
            if fault == "stall":
                count("stall")
                time.sleep(args.stall_seconds)
                rst_close(client)
                return
            if fault == "503":
                count("503")
                code = rng.choice(["SlowDown", "ServiceUnavailable"])
                xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                       '<Message>injected by faultproxy</Message></Error>' % code).encode()
                respond(client, "HTTP/1.1 503 Service Unavailable",
                        [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))], xml, keep)
                continue
            if fault == "reset" and rng.random() < 0.5:
                count("reset")  # before the server sees it
                rst_close(client)
                return
            # Flips hit object bodies only: no digest covers a listing's XML, and TCP/TLS
            # checksums make silent flips of that kind a non-event on real networks.
            if fault == "flip" and "?" in reqline.split()[1]:
                fault = rng.choice(["reset", "503", "truncate"])
                if fault == "503":
                    count("503")
                    xml = b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>'
                    respond(client, "HTTP/1.1 503 Service Unavailable",
                            [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))], xml, keep)
                    continue
            if fault == "flip" and method == "PUT" and body:
                i = rng.randrange(len(body))
                body = body[:i] + bytes([body[i] ^ 0x5A]) + body[i + 1:]
                count("flip")
                fault = None
            try:
                status, rheaders, rbody = forward(args.upstream, method, reqline, headers, body)
            except (OSError, ConnectionError, ValueError, IndexError):
                rst_close(client)  # server down: the client sees a reset
                return
            # a response without a body cannot be cut or flipped: lose it instead
            if (fault == "truncate" and len(rbody) <= 1) or (fault == "flip" and not rbody):
                fault = "reset"
            if fault == "reset":
                count("reset")  # after the server acted
                rst_close(client)
                return
            if fault == "flip":
                if rbody:
                    i = rng.randrange(len(rbody))
                    rbody = rbody[:i] + bytes([rbody[i] ^ 0x5A]) + rbody[i + 1:]
                    count("flip")
                fault = None
            if fault == "truncate" and len(rbody) > 1:
                count("truncate")
                cut = rng.randrange(len(rbody))
                lines = [status] + ["%s: %s" % (k, v) for k, v in rheaders if k.lower() != "connection"]
                lines.append("Connection: close")
                client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rbody[:cut])
                client.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
                client.close()
                return
            respond(client, status, rheaders, rbody, keep)
            if not keep:
                return
    except OSError:
        pass
    finally:
        try:
            client.close()
        except OSError:
            pass
        save_stats(args.stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--rate", type=float, default=0.25, help="share of requests that get a fault")
    ap.add_argument("--stall-share", type=float, default=0.02, help="share of faults that are stalls")
    ap.add_argument("--stall-seconds", type=float, default=20.0)
    ap.add_argument("--max-stalls", type=int, default=1000000, help="each costs the client ~15 s (curl low-speed limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flip-share", type=float, default=0.05,
                    help="share of faults that flip a byte (two flips in a row on one object are CORRUPT, by design)")
    ap.add_argument("--kinds", default="reset,503,truncate", help="the other faults, drawn evenly")
    ap.add_argument("--stats", default="")
    args = ap.parse_args()
    h, _, p = args.upstream.rpartition(":")
    args.upstream = (h, int(p))
    args.kinds = args.kinds.split(",")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: (save_stats(args.stats), sys.exit(0)))
    print("LISTENING %d" % srv.getsockname()[1], flush=True)
    master = random.Random(args.seed)
    while True:
        client, _ = srv.accept()
        rng = random.Random(master.random())
        threading.Thread(target=handle, args=(client, args, rng), daemon=True).start()


if __name__ == "__main__":
    main()
