/* After a request failed at the transport level, what does host:port speak? Both S3
 * backends ask it once per store to turn "connection reset" or "handshake failed" into
 * one line that says which setting is wrong (http against a TLS port, or the reverse),
 * instead of a retry loop ending in "unreachable". The probe sends a TLS ClientHello and
 * nothing else; it does not check the certificate (that is the real request's job). */
#ifndef XFFL_TLS_PROBE_H
#define XFFL_TLS_PROBE_H

typedef enum {
    TLS_PROBE_TLS,     /* the handshake completed: the port speaks TLS */
    TLS_PROBE_PLAIN,   /* the port answered the ClientHello with something not TLS (plain HTTP) */
    TLS_PROBE_UNKNOWN, /* refused, reset, timed out: nothing learned */
} tls_probe_result;

/* host without port (an IPv6 address with or without brackets); port > 0. At most 5 s. */
tls_probe_result tls_probe(const char *host, int port);

#endif
