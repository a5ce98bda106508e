/*
 * logsink.c: text or JSON log lines on stderr, every secret masked.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cbevents/alloc.h"
#include "logsink.h"

static void timestamp(char *buf, size_t size) {
  struct timeval tv;
  struct tm tm;

  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(tv.tv_usec / 1000));
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", out);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

void cb2m_logsink_write(void *userdata, cbev_log_level level, const char *msg) {
  cb2m_logsink *sink = userdata;
  char ts[96];
  char *masked = NULL;

  for (size_t i = 0; i < sink->n_secrets; i++) {
    char *m;
    if (!sink->secrets[i] || !*sink->secrets[i])
      continue;
    m = cbev_mask_secret(masked ? masked : msg, sink->secrets[i]);
    cbev_free(masked);
    masked = m;
    if (!masked) {
      msg = "(log line dropped: out of memory while masking)";
      break;
    }
  }
  if (masked)
    msg = masked;
  timestamp(ts, sizeof ts);
  if (sink->json) {
    fprintf(sink->out, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
            cbev_log_level_name(level));
    json_string(sink->out, msg);
    fputs("}\n", sink->out);
  } else {
    fprintf(sink->out, "%s %-5s %s\n", ts, cbev_log_level_name(level), msg);
  }
  fflush(sink->out);
  cbev_free(masked);
}
