/*
 * bench_bridge_metrics: the CPU one /metrics scrape costs the bridge
 * (issue: under 10 ms with 1000 broadcasters). Renders the exposition text
 * for N broadcasters with busy counters, R times, and reports the CPU time
 * per render (CLOCK_PROCESS_CPUTIME_ID: the thread's own work, not the
 * machine's noise) and the size of the answer. The HTTP part adds one
 * read and one write of that buffer.
 *   bench_bridge_metrics [BROADCASTERS [ROUNDS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
  int rounds = argc > 2 ? atoi(argv[2]) : 200;
  cb2m_bc_metrics *bcs = calloc(n ? n : 1, sizeof *bcs);
  const cb2m_bc_metrics **list = calloc(n ? n : 1, sizeof *list);
  char (*names)[32] = calloc(n ? n : 1, sizeof *names);
  cb2m_metrics m = {.version = "0.1.0", .mqtt_connected = 1, .start_time_s = 1764331200};
  double best = 1e9, total = 0;
  size_t len = 0;

  if (!bcs || !list || !names || rounds < 1)
    return 1;
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "room%05zu", i);
    bcs[i].name = names[i];
    bcs[i].up = 1;
    bcs[i].broadcasting = (int)(i & 1);
    for (int t = 0; t <= CBEV_EVENT_UNKNOWN; t++)
      bcs[i].events_by_type[t] = 1000000u + i * 13u + (unsigned)t;
    bcs[i].published = 12345678u + i;
    bcs[i].polls = 987654u;
    bcs[i].tip_tokens = 4242424u;
    bcs[i].last_event_unix_ms = 1764331200123ull + i;
    list[i] = &bcs[i];
  }
  for (int i = 0; i < 1000; i++)
    cb2m_histogram_observe(&m.delivery, (uint64_t)i);
  for (int r = 0; r < rounds; r++) {
    char *text;
    double t0 = cpu_ms(), dt;
    if (cb2m_metrics_render(&m, list, n, &text, &len) != CBEV_OK)
      return 1;
    dt = cpu_ms() - t0;
    free(text);
    total += dt;
    if (dt < best)
      best = dt;
  }
  printf("metrics render: %zu broadcasters, %zu bytes, CPU per scrape %.3f ms mean, %.3f ms best "
         "(%d rounds)\n",
         n, len, total / rounds, best, rounds);
  free(names);
  free(list);
  free(bcs);
  return 0;
}
