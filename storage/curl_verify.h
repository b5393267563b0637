/* Certificate verification for every libcurl handle in the process, libs3's included.
 *
 * libs3 2.0 (the V2 backend) sets CURLOPT_SSL_VERIFYPEER to 0 on each of its requests
 * ("Don't verify S3's certificate") and has no flag to change that. curl_verify.c
 * defines curl_easy_setopt in the executable, which the dynamic linker then binds libs3's
 * calls to; it forwards every option to the libcurl the caller would have reached (libs3
 * may use another flavour of libcurl than ours), unchanged, except
 * that "don't verify" becomes "verify", against AWS_CA_BUNDLE when it is set. The one
 * handle that may skip verification is the V4 backend's "does this port speak TLS?"
 * probe, which sends nothing: it says so with curl_verify_skip_next(). */
#ifndef XFFL_CURL_VERIFY_H
#define XFFL_CURL_VERIFY_H

/* The calling thread's next CURLOPT_SSL_VERIFYPEER 0 is honoured (once). */
void curl_verify_skip_next(void);
/* How many "don't verify" requests were turned into "verify" (for the tests). */
unsigned long curl_verify_overrides(void);

#endif
