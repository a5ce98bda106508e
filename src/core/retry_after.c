/*
 * retry_after.c: parses the Retry-After header (RFC 9110 10.2.3).
 *
 * Either delta-seconds or an HTTP-date in one of its three forms
 * (IMF-fixdate, the obsolete RFC 850 form and asctime). Dates are parsed by
 * hand rather than with strptime(), which depends on the locale and on
 * feature macros; the calendar arithmetic is the usual days-from-civil
 * formula (civil.c), so no timegm() is needed either. The result is capped at
 * CBEV_RETRY_AFTER_MAX_S: a server asking for longer is not obeyed beyond
 * an hour.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/error.h"
#include "cbevents/session.h"
#include "civil.h"

/* Longest header value considered; the longest valid form is 33 bytes. */
#define RETRY_AFTER_TEXT_MAX 64

static const char *const wkday_short[7] = {"Mon", "Tue", "Wed", "Thu",
                                           "Fri", "Sat", "Sun"};
static const char *const wkday_long[7] = {"Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday",
                                          "Sunday"};
static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int64_t year_of(time_t t) {
  int64_t days = (int64_t)t / 86400, y;
  unsigned m, d;

  if ((int64_t)t % 86400 < 0)
    days--;
  cbev__civil_from_days(days, &y, &m, &d);
  return y;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int lit(const char **p, const char *s) {
  size_t n = strlen(s);

  if (strncmp(*p, s, n) != 0)
    return 0;
  *p += n;
  return 1;
}

/* Exactly `digits` decimal digits. */
static int num(const char **p, int digits, int *out) {
  int v = 0;

  for (int i = 0; i < digits; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9')
      return 0;
    v = v * 10 + (c - '0');
  }
  *p += digits;
  *out = v;
  return 1;
}

static int one_of(const char **p, const char *const *names, int n) {
  for (int i = 0; i < n; i++) {
    if (lit(p, names[i]))
      return i;
  }
  return -1;
}

/* "HH:MM:SS" */
static int hms(const char **p, int *h, int *mi, int *s) {
  return num(p, 2, h) && lit(p, ":") && num(p, 2, mi) && lit(p, ":") &&
         num(p, 2, s) && *h <= 23 && *mi <= 59 && *s <= 60;
}

/* Seconds since the epoch of an HTTP-date; 0 on success. */
static int parse_http_date(const char *p, time_t wall_now, int64_t *out) {
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int d = 0, mon, h = 0, mi = 0, s = 0, y = 0;
  int64_t year;

  if (one_of(&p, wkday_long, 7) >= 0) {
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". A two-digit year more
     * than 50 years ahead is taken as the past century (RFC 9110 5.6.7). */
    if (!lit(&p, ", ") || !num(&p, 2, &d) || !lit(&p, "-") ||
        (mon = one_of(&p, months, 12)) < 0 || !lit(&p, "-") || !num(&p, 2, &y) ||
        !lit(&p, " ") || !hms(&p, &h, &mi, &s) || !lit(&p, " GMT") || *p)
      return -1;
    year = 2000 + y;
    if (year > year_of(wall_now) + 50)
      year -= 100;
  } else if (one_of(&p, wkday_short, 7) >= 0) {
    if (lit(&p, ", ")) {
      /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
      if (!num(&p, 2, &d) || !lit(&p, " ") || (mon = one_of(&p, months, 12)) < 0 ||
          !lit(&p, " ") || !num(&p, 4, &y) || !lit(&p, " ") ||
          !hms(&p, &h, &mi, &s) || !lit(&p, " GMT") || *p)
        return -1;
    } else {
      /* asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space) */
      if (!lit(&p, " ") || (mon = one_of(&p, months, 12)) < 0 || !lit(&p, " "))
        return -1;
      if (*p == ' ') {
        p++;
        if (!num(&p, 1, &d))
          return -1;
      } else if (!num(&p, 2, &d)) {
        return -1;
      }
      if (!lit(&p, " ") || !hms(&p, &h, &mi, &s) || !lit(&p, " ") ||
          !num(&p, 4, &y) || *p)
        return -1;
    }
    year = y;
  } else {
    return -1;
  }
  if (d < 1 || d > mdays[mon] + (mon == 1 && is_leap(year)) || year < 1900)
    return -1;
  *out = cbev__days_from_civil(year, mon + 1, d) * 86400 + h * 3600 + mi * 60 + s;
  return 0;
}

int cbev_parse_retry_after(const char *value, time_t wall_now,
                           uint64_t *delay_ms) {
  char text[RETRY_AFTER_TEXT_MAX + 1];
  size_t start = 0, end;
  uint64_t secs;

  if (!value || !delay_ms)
    return CBEV_EINVAL;
  end = strlen(value);
  while (start < end && (value[start] == ' ' || value[start] == '\t'))
    start++;
  while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
    end--;
  if (end == start || end - start > RETRY_AFTER_TEXT_MAX)
    return CBEV_EINVAL;
  memcpy(text, value + start, end - start);
  text[end - start] = '\0';

  if (text[0] >= '0' && text[0] <= '9') {
    char *stop;
    unsigned long long v;
    errno = 0;
    v = strtoull(text, &stop, 10);
    if (*stop)
      return CBEV_EINVAL;
    /* An overflowing number is still "very long": it is capped below. */
    secs = errno == ERANGE ? UINT64_MAX : (uint64_t)v;
  } else {
    int64_t when;
    if (parse_http_date(text, wall_now, &when) != 0)
      return CBEV_EINVAL;
    secs = when > (int64_t)wall_now ? (uint64_t)(when - (int64_t)wall_now) : 0;
  }
  if (secs > CBEV_RETRY_AFTER_MAX_S)
    secs = CBEV_RETRY_AFTER_MAX_S;
  *delay_ms = secs * 1000u;
  return CBEV_OK;
}
