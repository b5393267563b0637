/* Where an s3:// store is and who we are to it, from the variables users of the AWS tools
 * already have (docs/design.md "Storage"), shared by both S3 backends:
 *   XFFL_S3_SIGNATURE   v4 (default) or v2 (libs3)
 *   endpoint            XFFL_S3_ENDPOINT host:port + XFFL_S3_HTTPS 0|1 (default 1), else
 *                       AWS_ENDPOINT_URL (scheme://host[:port]), else AWS itself
 *                       (https://s3.<region>.amazonaws.com; v4 only)
 *   XFFL_S3_ADDRESSING  path | virtual (default: virtual for AWS, path for other endpoints)
 *   credentials         AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else
 *                       the profile AWS_PROFILE (default "default") of ~/.aws/credentials
 *                       (AWS_SHARED_CREDENTIALS_FILE) or ~/.aws/config (AWS_CONFIG_FILE)
 *   region              AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1
 *   AWS_CA_BUNDLE       a PEM file of CAs to trust instead of the system's (v2 too:
 *                       storage/curl_verify.h)
 * Every bad or missing value is a USAGE error naming the variable, before any request. */
#ifndef XFFL_S3_SETTINGS_H
#define XFFL_S3_SETTINGS_H

#include "common/status.h"

typedef struct s3_settings {
    int v2;          /* XFFL_S3_SIGNATURE=v2 */
    int https;
    char *host;      /* host name or address, no port */
    int port;        /* 0: the scheme's default */
    char *hostport;  /* host[:port], the port only when given */
    int aws;         /* no endpoint given: AWS itself */
    int virtual_hosted;
    char *region, *access, *secret, *token; /* token NULL when none */
    char *ca_bundle; /* NULL: the system's */
    char *creds_from; /* "AWS_ACCESS_KEY_ID" or "profile 'x' in /path", for messages */
} s3_settings;

/* url: the store URL, for messages. */
XFFL_MUST_USE xffl_status s3_settings_load(const char *url, s3_settings *out);
void s3_settings_free(s3_settings *s);

#endif
