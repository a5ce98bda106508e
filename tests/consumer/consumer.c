/*
 * A tiny program outside the tree that uses an installed libcbevents, the
 * way a C developer would: it parses a recorded Events API response and
 * prints every event as normalized JSON (one line each), then the nextUrl
 * and the tokens tipped, read through the typed accessors. The install
 * test builds it against the installed package with pkg-config and with
 * find_package(cbevents) and checks what it prints.
 *
 *   consumer RESPONSE.json
 */
#include <stdio.h>
#include <stdlib.h>

#include <cbevents/cbevents.h>

#define MAX_BODY_BYTES (8u * 1024u * 1024u)

static void log_stderr(void *userdata, cbev_log_level level, const char *msg) {
  (void)userdata;
  fprintf(stderr, "consumer: %s: %s\n", cbev_log_level_name(level), msg);
}

/* Reads the whole file into a new buffer (caller frees), capped. */
static char *read_file(const char *path, size_t *len_out) {
  char *buf = NULL;
  char *result = NULL;
  size_t len = 0;
  FILE *f = fopen(path, "rb");

  if (f == NULL)
    goto out;
  buf = malloc(MAX_BODY_BYTES + 1);
  if (buf == NULL)
    goto out;
  len = fread(buf, 1, MAX_BODY_BYTES + 1, f);
  if (ferror(f) || len > MAX_BODY_BYTES)
    goto out;
  buf[len] = '\0';
  *len_out = len;
  result = buf;
  buf = NULL;
out:
  free(buf);
  if (f != NULL)
    fclose(f);
  return result;
}

int main(int argc, char **argv) {
  int status = 1;
  char *body = NULL;
  size_t len = 0;
  cbev_batch *batch = NULL;
  cbev_logger logger = {log_stderr, NULL, CBEV_LOG_WARN};
  long long tip_tokens = 0;

  if (argc != 2) {
    fprintf(stderr, "usage: consumer RESPONSE.json\n");
    return 2;
  }
  body = read_file(argv[1], &len);
  if (body == NULL) {
    fprintf(stderr, "consumer: cannot read %s\n", argv[1]);
    goto out;
  }
  int rc = cbev_parse_response(body, len, &logger, NULL, &batch);
  if (rc != CBEV_OK) {
    fprintf(stderr, "consumer: parse: %s\n", cbev_strerror(rc));
    goto out;
  }
  for (size_t i = 0; i < cbev_batch_count(batch); i++) {
    const cbev_event *ev = cbev_batch_get(batch, i);
    char *json = NULL;
    const cbev_tip *tip = cbev_event_tip(ev);

    rc = cbev_event_to_json(ev, 0, &json, NULL);
    if (rc != CBEV_OK) {
      fprintf(stderr, "consumer: %s: %s\n", cbev_event_id(ev), cbev_strerror(rc));
      goto out;
    }
    printf("event %s\n", json);
    cbev_free(json);
    if (tip != NULL && tip->has_tokens)
      tip_tokens += (long long)tip->tokens;
  }
  const char *next = cbev_batch_next_url(batch);
  printf("next_url %s\n", next != NULL ? next : "(none)");
  printf("tip_tokens %lld\n", tip_tokens);
  printf("version %s %s\n", CBEV_VERSION, cbev_version());
  status = 0;
out:
  cbev_batch_free(batch);
  free(body);
  return status;
}
