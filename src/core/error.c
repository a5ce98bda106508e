/* error.c: descriptions of the one error enum. */
#include "cbevents/error.h"
#include "cbevents/version.h"

static const char *const messages[CBEV_ERR_COUNT] = {
    [CBEV_OK] = "success",
    [CBEV_ENOMEM] = "out of memory",
    [CBEV_EINVAL] = "invalid argument",
    [CBEV_EAUTH] = "authentication failed (HTTP 401/403: bad, revoked or mis-scoped token)",
    [CBEV_EHTTP] = "HTTP error status",
    [CBEV_EAGAIN] = "temporary failure, try again",
    [CBEV_EURL] = "URL refused",
    [CBEV_EPARSE] = "malformed JSON or unexpected document",
    [CBEV_ETOOBIG] = "too large",
    [CBEV_ETRANSPORT] = "connection error or timeout",
    [CBEV_ERETRIES] = "retry attempts exhausted",
    [CBEV_ECANCELED] = "canceled",
    [CBEV_EIO] = "I/O error",
    [CBEV_ENOTFOUND] = "not found",
    [CBEV_EHANDLER] = "handler failed",
};

const char *cbev_strerror(int rc) {
  if (rc < 0 || rc >= CBEV_ERR_COUNT || !messages[rc])
    return "unknown error";
  return messages[rc];
}

const char *cbev_version(void) { return CBEV_VERSION; }
