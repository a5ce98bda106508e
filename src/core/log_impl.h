/*
 * log_impl.h: masking helpers for text that is quoted in messages (internal
 * to libcbevents).
 *
 * The rule both follow: mask the secret first, cut second. Cutting first
 * would leave the start of a secret that straddles the cut in the text,
 * where the masking can no longer recognise it.
 */
#ifndef CBEV_LOG_IMPL_H
#define CBEV_LOG_IMPL_H

#include <stddef.h>

/* The length of the longest prefix of s (len bytes) that fits in max bytes
 * without ending inside a UTF-8 sequence. */
size_t cbev__log_utf8_prefix(const char *s, size_t len, size_t max);

/* Copies text into out (size >= 1 bytes) with secret (may be NULL) masked,
 * then cut to fit on a UTF-8 character boundary. *cut (may be NULL) is set
 * to 1 when something was left out. Returns CBEV_OK, or CBEV_ENOMEM with out
 * set to "" (the unmasked text is never copied). */
int cbev__log_mask_cut(char *out, size_t size, const char *text, const char *secret,
                 int *cut);

/* An excerpt of the first bytes of a response body (len bytes, NUL bytes
 * allowed) for a message: control characters and bytes that are not
 * well-formed UTF-8 become '?', secret is masked, and the result is cut to
 * fit out (size >= 1) on a UTF-8 character boundary, so the excerpt is
 * always valid, printable UTF-8. *cut as above. Returns CBEV_OK, or
 * CBEV_ENOMEM with out set to "". */
int cbev__log_excerpt(char *out, size_t size, const char *body, size_t len,
                const char *secret, int *cut);

#endif
