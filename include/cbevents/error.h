/*
 * cbevents/error.h: the one error enum of libcbevents.
 *
 * Every function of the library that can fail returns an int that is one of
 * these codes; 0 is success. Codes are never renumbered: new ones are only
 * appended before CBEV_ERR_COUNT. The only other returns are predicates
 * (cbev_utf8_valid(), cbev_event_is_anonymous(): 1 or 0), lookups that
 * return a pointer (NULL: none) and counts or lengths, each documented where
 * it is declared. Who frees what: alloc.h.
 */
#ifndef CBEVENTS_ERROR_H
#define CBEVENTS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cbev_rc {
  CBEV_OK = 0,
  CBEV_ENOMEM = 1,     /* an allocation failed */
  CBEV_EINVAL = 2,     /* an argument or setting is invalid */
  CBEV_EAUTH = 3,      /* HTTP 401/403: bad, revoked or mis-scoped token */
  CBEV_EHTTP = 4,      /* an HTTP error status: final (400, 404) or, as the last
                        * error of a retried 429/5xx, transient */
  CBEV_EAGAIN = 5,     /* transient failure; the caller should retry later */
  CBEV_EURL = 6,       /* a URL (base or nextUrl) was refused by the rules */
  CBEV_EPARSE = 7,     /* a body or document is not the expected JSON */
  CBEV_ETOOBIG = 8,    /* a body or value exceeds its cap */
  CBEV_ETRANSPORT = 9, /* connection error, reset or timeout */
  CBEV_ERETRIES = 10,  /* retry attempts exhausted; see the last error */
  CBEV_ECANCELED = 11, /* stopped by the caller (signal, stop flag) */
  CBEV_EIO = 12,       /* a file or system call failed */
  CBEV_ENOTFOUND = 13, /* a looked-up item does not exist */
  CBEV_EHANDLER = 14,  /* reserved for handlers that want a generic failure */
  CBEV_ERR_COUNT
} cbev_rc;

/* Returns a static, human-readable description of rc; never NULL. */
const char *cbev_strerror(int rc);

#ifdef __cplusplus
}
#endif
#endif
