/*
 * topics.c: topic and broadcaster-name rules. Everything that becomes part
 * of a topic is checked here once, so that a name from the config file can
 * neither subscribe-match other topics (wildcards) nor escape its subtree
 * ('/'). See topics.h.
 */
#include <stdio.h>
#include <string.h>

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

static int fail(char *why, size_t size, const char *reason) {
  if (why && size)
    snprintf(why, size, "%s", reason);
  return -1;
}

/* MQTT requires topics to be well-formed UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;

  while (i < n) {
    unsigned char c = s[i];
    size_t need;
    unsigned long cp;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07u;
    } else {
      return 0;
    }
    if (n - i <= need)
      return 0;
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xc0u) != 0x80u)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += need + 1;
  }
  return 1;
}

int cb2m_topic_base_valid(const char *base, char *why, size_t size) {
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
  if (!utf8_valid((const unsigned char *)base, n))
    return fail(why, size, "must be valid UTF-8");
  return 0;
}

int cb2m_topic(char *buf, size_t size, const char *base, const char *level1, const char *level2) {
  int n;

  if (!buf || size == 0)
    return -1;
  buf[0] = '\0';
  if (!base || !*base || !level1 || !*level1 || (level2 && !*level2))
    return -1;
  if (strpbrk(base, "+#") || strpbrk(level1, "+#") || (level2 && strpbrk(level2, "+#")))
    return -1;
  if (level2)
    n = snprintf(buf, size, "%s/%s/%s", base, level1, level2);
  else
    n = snprintf(buf, size, "%s/%s", base, level1);
  if (n < 0 || (size_t)n >= size || n > CB2M_TOPIC_MAX) {
    buf[0] = '\0';
    return -1;
  }
  return 0;
}
