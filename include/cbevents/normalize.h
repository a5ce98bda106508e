/*
 * cbevents/normalize.h: an event as the normalized JSON of SPEC section 3.
 *
 * One serializer for every consumer: cbevents-tail prints these bytes and
 * cb2mqtt publishes them. Output is always valid UTF-8 JSON: invalid UTF-8
 * sequences in upstream strings are replaced by U+FFFD, control characters
 * are escaped.
 */
#ifndef CBEVENTS_NORMALIZE_H
#define CBEVENTS_NORMALIZE_H

#include <stddef.h>

#include "cbevents/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for cbev_event_to_json(). */
#define CBEV_JSON_EXPOSE_ANON 0x1u /* keep the user of anonymous tips */
#define CBEV_JSON_RAW 0x2u         /* the upstream event object unchanged */

/* Serializes ev. On CBEV_OK *json_out is a NUL-terminated, newly allocated
 * string (cbev_free() it) of *len_out bytes (len_out may be NULL), without a
 * trailing newline. Keys are compact (no spaces) and in the SPEC's order:
 * id, event_type, broadcaster, timestamp, user, then "tip", "message",
 * "media", "subject" or, for an unknown method, "raw" (upstream `object`
 * of any JSON type, null when absent). "message" holds text, color,
 * bg_color, font, orig, from_user, to_user. A part the type has but
 * upstream lacked is null. With CBEV_JSON_RAW the upstream event object is
 * written back instead, every number as its original text (an integer
 * past 2^53 is not rounded), except that the user of an anonymous tip
 * (cbev_event_is_anonymous: fail closed) is null there too unless
 * CBEV_JSON_EXPOSE_ANON is set; the normalized form hides it the same way
 * and says "is_anon": true.
 * Returns CBEV_EINVAL for NULL arguments (*json_out is then untouched;
 * otherwise it is NULL on failure), CBEV_ENOMEM, CBEV_ETOOBIG when the
 * output would pass 64 MiB. */
int cbev_event_to_json(const cbev_event *ev, unsigned flags, char **json_out,
                       size_t *len_out);

/* "2025-08-16T20:41:43.836Z" from epoch milliseconds into buf (>= 25
 * bytes). Returns CBEV_OK, or CBEV_EINVAL when buf is too small or the time
 * cannot be represented. */
int cbev_format_timestamp(unsigned long long epoch_ms, char *buf, size_t size);

/* Copies s into out (size bytes, may be 0 with out NULL) as valid UTF-8:
 * each invalid sequence becomes U+FFFD, by the rule the normalizer uses
 * (one per maximal invalid subpart). Like snprintf, returns the length of
 * the whole repaired text (without its NUL), so a caller sizes its buffer
 * with a first call; out is NUL-terminated and cut only when size is too
 * small (never inside a character). s NULL counts as "". For text taken
 * from events that goes out other than through cbev_event_to_json(). */
size_t cbev_utf8_repair(char *out, size_t size, const char *s);

/* Whether s[0..n) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * UTF-16 surrogates, nothing above U+10FFFF, no sequence cut by the end.
 * NUL and other ASCII bytes are valid. By the rule cbev_utf8_repair() and
 * the normalizer use. Returns 1 or 0; s NULL is valid only with n 0. */
int cbev_utf8_valid(const char *s, size_t n);

/* "roomSubjectChange" -> "room_subject_change" for unknown methods, into a
 * new string (cbev_free() it). Characters outside [A-Za-z0-9_] become '_'; the
 * result is capped at 64 bytes. NULL on ENOMEM or NULL input. */
char *cbev_snake_case(const char *method);

#ifdef __cplusplus
}
#endif
#endif
