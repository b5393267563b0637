/* See tls_probe.h. */
#include "storage/tls_probe.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include "storage/curl_verify.h"

tls_probe_result tls_probe(const char *host, int port)
{
    CURL *h = curl_easy_init();
    if (!h) return TLS_PROBE_UNKNOWN;
    char url[600], err[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, strchr(host, ':') && host[0] != '[' ? "https://[%s]:%d/" : "https://%s:%d/", host, port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_verify_skip_next(); /* only whether TLS answers; nothing is sent */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (cc == CURLE_OK) return TLS_PROBE_TLS;
    if (cc == CURLE_SSL_CONNECT_ERROR && (strstr(err, "wrong version number") || strstr(err, "packet length too long") ||
                                          strstr(err, "record layer failure")))
        return TLS_PROBE_PLAIN;
    return TLS_PROBE_UNKNOWN;
}
