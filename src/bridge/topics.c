/*
 * topics.c: topic and broadcaster-name rules. Everything that becomes part
 * of a topic is checked here once, so that a name from the config file can
 * neither subscribe-match other topics (wildcards) nor escape its subtree
 * ('/'). See topics.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cbevents/normalize.h"
#include "topics.h"

int cb2m_name_valid(const char *name) {
  size_t n;

  if (!name)
    return 0;
  n = strlen(name);
  if (n < 1 || n > CB2M_NAME_MAX || strcmp(name, "bridge") == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

int cb2m_name_file(char *file, size_t size, const char *name, const char *suffix) {
  int n;

  if (!cb2m_name_valid(name)) {
    errno = EINVAL;
    return CBEV_EINVAL;
  }
  n = snprintf(file, size, "%s%s", name, suffix);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return CBEV_ETOOBIG;
  }
  return CBEV_OK;
}

static int fail(char *why, size_t size, const char *reason) {
  if (why && size)
    snprintf(why, size, "%s", reason);
  return CBEV_EINVAL;
}

int cb2m_topic_base_check(const char *base, char *why, size_t size) {
  size_t n;

  if (!base || !*base)
    return fail(why, size, "must not be empty");
  n = strlen(base);
  if (n > CB2M_BASE_TOPIC_MAX)
    return fail(why, size, "must be at most 256 bytes");
  if (strpbrk(base, "+#"))
    return fail(why, size, "must not contain the wildcards + or #");
  if (base[0] == '$')
    return fail(why, size, "must not start with $ (reserved by brokers)");
  if (base[0] == '/' || base[n - 1] == '/' || strstr(base, "//"))
    return fail(why, size, "must not have an empty level (leading, trailing or double /)");
  /* MQTT requires topics to be well-formed UTF-8: no overlong forms, no
   * surrogates, nothing above U+10FFFF. */
  if (!cbev_utf8_valid(base, n))
    return fail(why, size, "must be valid UTF-8");
  return CBEV_OK;
}

int cb2m_topic(char *buf, size_t size, const char *base, const char *level1, const char *level2) {
  int n;

  if (!buf || size == 0)
    return CBEV_EINVAL;
  buf[0] = '\0';
  if (!base || !*base || !level1 || !*level1 || (level2 && !*level2))
    return CBEV_EINVAL;
  if (strpbrk(base, "+#") || strpbrk(level1, "+#") || (level2 && strpbrk(level2, "+#")))
    return CBEV_EINVAL;
  if (level2)
    n = snprintf(buf, size, "%s/%s/%s", base, level1, level2);
  else
    n = snprintf(buf, size, "%s/%s", base, level1);
  if (n < 0 || (size_t)n >= size || n > CB2M_TOPIC_MAX) {
    buf[0] = '\0';
    return CBEV_ETOOBIG;
  }
  return CBEV_OK;
}
