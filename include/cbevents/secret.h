/*
 * cbevents/secret.h: reading a secret (an API token, an Events API URL)
 * from a file, by one rule for every program of the tree.
 *
 * The rule: the file holds at most max_bytes bytes (the caller's cap:
 * cbevents-tail takes CBEV_SECRET_FILE_MAX, cb2mqtt 64 KiB for the
 * longer feed URLs a file may hold); one trailing newline
 * (LF or CRLF) is dropped, as editors and `echo` add one; what is left must
 * not be empty and must not hold a control character (bytes below 0x20,
 * NUL and DEL 0x7F included), so a stray second line or a binary file is
 * refused instead of being sent as part of a URL.
 */
#ifndef CBEVENTS_SECRET_H
#define CBEVENTS_SECRET_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A sensible max_bytes for a token or a URL file. */
#define CBEV_SECRET_FILE_MAX 4096

/* Reads the secret in path by the rule above into *out (NUL-terminated;
 * cbev_free() it, and wipe it first if you care). Returns CBEV_OK,
 * CBEV_EINVAL (NULL argument or max_bytes 0), CBEV_EIO (cannot open or
 * read: errno tells why), CBEV_ETOOBIG (more than max_bytes bytes),
 * CBEV_EPARSE (empty, or a control character) or CBEV_ENOMEM. *out is NULL
 * after any failure. The library does not log: the caller names the file
 * in its own message. */
int cbev_read_secret_file(const char *path, size_t max_bytes, char **out);

#ifdef __cplusplus
}
#endif
#endif
