/*
 * cbevents/log.h: how the library reports, and how it keeps secrets out of it.
 *
 * The library never prints. Every message goes to a cbev_logger callback
 * that the program installs; with no callback, messages are dropped. Before
 * a message reaches the callback, the token of the object that logs it is
 * masked (raw and percent-encoded forms), so a URL can be logged safely.
 */
#ifndef CBEVENTS_LOG_H
#define CBEVENTS_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cbev_log_level {
  CBEV_LOG_ERROR = 0,
  CBEV_LOG_WARN = 1,
  CBEV_LOG_INFO = 2,
  CBEV_LOG_DEBUG = 3
} cbev_log_level;

/* msg is a NUL-terminated line without a trailing newline, already masked.
 * It is only valid during the call. */
typedef void (*cbev_log_fn)(void *userdata, cbev_log_level level,
                            const char *msg);

typedef struct cbev_logger {
  cbev_log_fn fn;          /* NULL: drop everything */
  void *userdata;          /* passed to fn */
  cbev_log_level max_level; /* messages above this level are not formatted */
} cbev_logger;

/* "error", "warn", "info", "debug". */
const char *cbev_log_level_name(cbev_log_level level);

/* Parses a level name (case-insensitive; "warning" is accepted).
 * Returns CBEV_OK, or CBEV_EINVAL for an unknown name. */
int cbev_log_level_parse(const char *name, cbev_log_level *out);

/* The text put in place of a secret: "***". */
#define CBEV_MASK "***"

/* Returns a newly allocated copy of text in which every occurrence of
 * secret, and of its percent-encoded forms (upper and lower case hex), is
 * replaced by CBEV_MASK. A NULL or empty secret copies text unchanged.
 * The caller frees the result with cbev_free(). Returns NULL only when text is
 * NULL or memory is exhausted. */
char *cbev_mask_secret(const char *text, const char *secret);

/* Logs through logger (may be NULL) after masking secret (may be NULL) out
 * of the formatted message. Messages are capped at 2 KiB. */
void cbev_log(const cbev_logger *logger, const char *secret,
              cbev_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
