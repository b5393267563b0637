/* See curl_verify.h. */
#include "storage/curl_verify.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);

/* Two libcurls live in this process: ours (the OpenSSL flavour, CURL_OPENSSL_4) and the
 * one libs3 was built against (Debian's libs3 uses libcurl-gnutls, CURL_GNUTLS_3). A
 * handle must go back to the library that made it, so each call is forwarded to the
 * curl_easy_setopt its caller would have reached without us: for our own code the next
 * definition after the executable, for a shared library (libs3) the one in that
 * library's own dependencies (dlsym on its handle never sees the executable). */
static setopt_fn own_setopt;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *own_base;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct { void *base; setopt_fn fn; } others[8];
static _Thread_local int skip_next;
static unsigned long overrides;

static void find_own(void)
{
    own_setopt = (setopt_fn)dlsym(RTLD_NEXT, "curl_easy_setopt");
    Dl_info me;
    if (dladdr((void *)find_own, &me)) own_base = me.dli_fbase;
}

/* The curl_easy_setopt the code at return address ra would have called. */
static setopt_fn real_for(void *ra)
{
    pthread_once(&once, find_own);
    Dl_info who;
    if (!dladdr(ra, &who) || who.dli_fbase == own_base || !who.dli_fname) return own_setopt;
    setopt_fn fn = NULL;
    pthread_mutex_lock(&mu);
    size_t i = 0;
    for (; i < sizeof others / sizeof *others && others[i].base; i++)
        if (others[i].base == who.dli_fbase) { fn = others[i].fn; break; }
    if (!fn) {
        void *h = dlopen(who.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
        if (h) fn = (setopt_fn)dlsym(h, "curl_easy_setopt");
        if (h) dlclose(h); /* RTLD_NOLOAD: only the reference taken here is dropped */
        if (fn && i < sizeof others / sizeof *others) others[i].base = who.dli_fbase, others[i].fn = fn;
    }
    pthread_mutex_unlock(&mu);
    return fn ? fn : own_setopt;
}

void curl_verify_skip_next(void) { skip_next = 1; }
unsigned long curl_verify_overrides(void) { return __atomic_load_n(&overrides, __ATOMIC_RELAXED); }

#undef curl_easy_setopt /* curl.h may define a type-checking macro of that name */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    setopt_fn real_setopt = real_for(__builtin_return_address(0));
    if (!real_setopt) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    /* the option's number says the type of its one argument (curl.h's CURLOPTTYPE_*) */
    if (opt < CURLOPTTYPE_OBJECTPOINT) {
        long v = va_arg(ap, long);
        if (opt == CURLOPT_SSL_VERIFYPEER && v == 0) {
            if (skip_next) {
                skip_next = 0;
            } else {
                v = 1;
                __atomic_add_fetch(&overrides, 1, __ATOMIC_RELAXED);
                const char *ca = getenv("AWS_CA_BUNDLE");
                /* the bundle instead of the system's CAs (docs/storage.md), so no CA
                 * directory either: GnuTLS would also parse every file in it on each
                 * new connection (~0.05 s of CPU for Debian's 145) */
                if (ca && *ca) real_setopt(h, CURLOPT_CAINFO, ca), real_setopt(h, CURLOPT_CAPATH, (char *)NULL);
            }
        }
        rc = real_setopt(h, opt, v);
    } else if (opt >= CURLOPTTYPE_OFF_T && opt < CURLOPTTYPE_BLOB) {
        curl_off_t v = va_arg(ap, curl_off_t);
        rc = real_setopt(h, opt, v);
    } else {
        /* object, string, slist, function and blob pointers: all passed as one pointer */
        void *p = va_arg(ap, void *);
        rc = real_setopt(h, opt, p);
    }
    va_end(ap);
    return rc;
}
