/*
 * bench_parse.c: throughput of cbev_parse_response + cbev_event_to_json on
 * a realistic 100-event batch mixing the 12 methods (users with every
 * field, tips, chat, media...). SPEC section 6 asks for a same-run
 * reference on the same input, so it also times cJSON_ParseWithLengthOpts
 * alone: the general parser the library used before json.c.
 * Usage: bench_parse [seconds per measurement, default 2] [only]
 * With `only` (1, 2 or 3) just that measurement runs, for a profiler.
 * Prints the best of 10 interleaved slices of each measurement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cbevents/alloc.h"
#include "cbevents/error.h"
#include "cbevents/event.h"
#include "cbevents/normalize.h"

#define EVENTS 100
#define BODY_MAX (256 * 1024)

static const char *const methods[] = {
    "broadcastStart", "broadcastStop", "roomSubjectChange", "userEnter",
    "userLeave",      "follow",        "unfollow",          "fanclubJoin",
    "chatMessage",    "privateMessage", "tip",              "mediaPurchase"};
static const char *const names[] = {"bob", "carol", "dave", "erin_x", "frank-99"};

static size_t add_event(char *p, size_t cap, unsigned i) {
  const char *m = methods[i % 12];
  const char *u = names[i % 5];
  int n;

  n = snprintf(p, cap,
               "%s{\"method\":\"%s\",\"id\":\"%llu-%u\",\"object\":{\"broadcaster\":\"alice\",",
               i ? "," : "", m, 1755376889458ull + i * 37ull, i % 3);
  if (i % 12 == 2) {
    n += snprintf(p + n, cap - (size_t)n,
                  "\"subject\":\"Goal: %u tokens for a dance \\u2728 #fun #dance\"}}", 500 + i);
    return (size_t)n;
  }
  n += snprintf(p + n, cap - (size_t)n,
                "\"user\":{\"username\":\"%s\",\"colorGroup\":\"tr\",\"fcAutoRenew\":false,"
                "\"gender\":\"m\",\"hasDarkmode\":true,\"hasTokens\":true,\"inFanclub\":%s,"
                "\"inPrivateShow\":false,\"isBroadcasting\":false,\"isFollower\":true,"
                "\"isMod\":false,\"isOwner\":false,\"isSilenced\":false,\"isSpying\":false,"
                "\"language\":\"en\",\"recentTips\":\"some\",\"subgender\":\"\"}",
                u, i % 2 ? "true" : "false");
  switch (i % 12) {
  case 8:
  case 9:
    n += snprintf(p + n, cap - (size_t)n,
                  ",\"message\":{\"color\":\"#494949\",\"bgColor\":null,\"message\":\"hello "
                  "alice, how are you today? caf\\u00e9 \\ud83d\\ude00\",\"font\":\"default\","
                  "\"orig\":\"hello alice\"%s}",
                  i % 12 == 9 ? ",\"fromUser\":\"bob\",\"toUser\":\"alice\"" : "");
    break;
  case 10:
    n += snprintf(p + n, cap - (size_t)n,
                  ",\"tip\":{\"tokens\":%u,\"isAnon\":%s,\"message\":\"| thanks for the show\"}",
                  25 + i, i % 4 ? "false" : "true");
    break;
  case 11:
    n += snprintf(p + n, cap - (size_t)n,
                  ",\"media\":{\"id\":%u,\"name\":\"photoset %u\",\"type\":\"photos\","
                  "\"tokens\":100}",
                  1000 + i, i);
    break;
  default:
    break;
  }
  n += snprintf(p + n, cap - (size_t)n, "}}");
  return (size_t)n;
}

static size_t build_body(char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "{\"events\":[");
  for (unsigned i = 0; i < EVENTS; i++)
    n += add_event(buf + n, cap - n, i);
  n += (size_t)snprintf(buf + n, cap - n,
                        "],\"nextUrl\":\"https://eventsapi.chaturbate.com/events/alice/"
                        "0123456789abcdef/?i=1755376893121-0&timeout=10\"}");
  return n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One batch through the library. Returns the bytes of JSON written. */
static size_t run_ours(const char *body, size_t len) {
  cbev_batch *b = NULL;
  size_t out = 0;

  if (cbev_parse_response(body, len, NULL, NULL, &b) != CBEV_OK || cbev_batch_count(b) != EVENTS) {
    fprintf(stderr, "bench_parse: the batch did not parse\n");
    exit(1);
  }
  for (size_t i = 0; i < EVENTS; i++) {
    char *json = NULL;
    size_t n = 0;
    if (cbev_event_to_json(cbev_batch_get(b, i), 0, &json, &n) != CBEV_OK) {
      fprintf(stderr, "bench_parse: normalize failed\n");
      exit(1);
    }
    out += n;
    cbev_free(json);
  }
  cbev_batch_free(b);
  return out;
}

static size_t run_parse_only(const char *body, size_t len) {
  cbev_batch *b = NULL;

  if (cbev_parse_response(body, len, NULL, NULL, &b) != CBEV_OK) {
    fprintf(stderr, "bench_parse: the batch did not parse\n");
    exit(1);
  }
  cbev_batch_free(b);
  return 0;
}

static size_t run_cjson(const char *body, size_t len) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!root) {
    fprintf(stderr, "bench_parse: cJSON failed\n");
    exit(1);
  }
  cJSON_Delete(root);
  return 0;
}

typedef struct runner {
  const char *label;
  size_t (*fn)(const char *, size_t);
  double best_rate; /* batches per second, best slice */
  double out_per_batch;
} runner;

/* Runs fn for about `seconds`; returns batches per second. */
static double slice(runner *r, const char *body, size_t len, double seconds) {
  unsigned long long rounds = 0;
  size_t out = 0;
  double t0 = now_s(), dt;

  do {
    for (int k = 0; k < 20; k++)
      out += r->fn(body, len);
    rounds += 20;
    dt = now_s() - t0;
  } while (dt < seconds);
  r->out_per_batch = (double)out / (double)rounds;
  return (double)rounds / dt;
}

/* The machine is shared: the runs are interleaved in short slices and the
 * best slice of each is kept, so a neighbour's burst hits all of them
 * alike instead of skewing one. */
static void measure(runner *rs, size_t n, const char *body, size_t len, double seconds) {
  const int slices = 10;

  for (int s = 0; s < slices; s++) {
    for (size_t i = 0; i < n; i++) {
      double rate = slice(&rs[i], body, len, seconds / slices);
      if (rate > rs[i].best_rate)
        rs[i].best_rate = rate;
    }
  }
  for (size_t i = 0; i < n; i++) {
    printf("%-34s %10.0f events/s  %7.1f MB/s in", rs[i].label, rs[i].best_rate * EVENTS,
           rs[i].best_rate * (double)len / 1e6);
    if (rs[i].out_per_batch > 0)
      printf("  %7.1f MB/s out", rs[i].best_rate * rs[i].out_per_batch / 1e6);
    printf("\n");
  }
}

int main(int argc, char **argv) {
  static char body[BODY_MAX];
  double seconds = 2.0;
  size_t len, only = 0;

  if (argc > 1) {
    char *end;
    seconds = strtod(argv[1], &end);
    if (*end || seconds <= 0 || seconds > 600) {
      fprintf(stderr, "usage: bench_parse [seconds] [1|2|3]\n");
      return 2;
    }
  }
  if (argc > 2) {
    only = (size_t)atoi(argv[2]);
    if (only < 1 || only > 3) {
      fprintf(stderr, "usage: bench_parse [seconds] [1|2|3]\n");
      return 2;
    }
  }
  len = build_body(body, sizeof body);
  printf("input: %d events, %zu bytes (%.0f bytes/event)\n", EVENTS, len, (double)len / EVENTS);
  runner rs[] = {{"parse + normalize (libcbevents)", run_ours, 0, 0},
                 {"parse only (libcbevents)", run_parse_only, 0, 0},
                 {"cJSON_ParseWithLengthOpts alone", run_cjson, 0, 0}};
  if (only)
    measure(&rs[only - 1], 1, body, len, seconds);
  else
    measure(rs, sizeof rs / sizeof rs[0], body, len, seconds);
  return 0;
}
