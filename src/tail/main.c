/*
 * cbevents-tail: the library's command-line example. Prints every event of
 * one broadcaster as a normalized JSON line on stdout; logs go to stderr.
 *
 * The token comes from the environment only (CB_TOKEN, CB_TOKEN_FILE or the
 * whole CB_EVENTS_URL), never from argv, where every user could read it.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cbevents/cbevents.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_AUTH 3

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void log_stderr(void *userdata, cbev_log_level level, const char *msg) {
  (void)userdata;
  fprintf(stderr, "cbevents-tail: %s: %s\n", cbev_log_level_name(level), msg);
}

static void usage(FILE *f) {
  fputs("usage: cbevents-tail [--testbed | --api URL] [--timeout SECONDS] [--ca-file FILE]\n"
        "                     [--rate N/SECONDS] [--retries N] [--log-level LEVEL]\n"
        "                     [--raw] [--expose-anonymous-tippers] USERNAME\n"
        "\n"
        "Prints the Chaturbate Events API feed of USERNAME as JSON lines.\n"
        "The token is read from CB_TOKEN or CB_TOKEN_FILE; alternatively CB_EVENTS_URL\n"
        "holds the whole feed URL (then USERNAME may be omitted).\n"
        "\n"
        "  --api URL          API base (default " CBEV_PRODUCTION_BASE ")\n"
        "  --testbed          use " CBEV_TESTBED_BASE "\n"
        "  --timeout SECONDS  long-poll timeout, 0..90 (default 10)\n"
        "  --ca-file FILE     extra CA bundle for the API\n"
        "  --rate N/SECONDS   request rate limit (default 2000/60)\n"
        "  --retries N        attempts per request, 0 = forever (default 8)\n"
        "  --log-level LEVEL  error, warn, info or debug (default warn)\n"
        "  --raw              print each upstream event object as received (numbers\n"
        "                     as their text) instead of the normalized form\n"
        "  --expose-anonymous-tippers\n"
        "                     keep the user of anonymous tips (hidden by default, in\n"
        "                     both forms; a tip is anonymous unless isAnon is false)\n"
        "\n"
        "A 401/403 is retried 2 times with the backoff before it counts.\n"
        "Exit status: 0 on SIGINT/SIGTERM, 1 runtime error, 2 usage, 3 authentication failed.\n",
        f);
}

static int parse_int(const char *text, long min, long max, long *out) {
  char *end;
  long v;

  errno = 0;
  v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

/* Reads the token file by the library's rule (cbevents/secret.h); NULL
 * after saying why on stderr. */
static char *read_token_file(const char *path) {
  char *token = NULL;
  int rc = cbev_read_secret_file(path, CBEV_SECRET_FILE_MAX, &token);

  if (rc == CBEV_EIO)
    fprintf(stderr, "cbevents-tail: CB_TOKEN_FILE %s: %s\n", path, strerror(errno));
  else if (rc == CBEV_ETOOBIG)
    fprintf(stderr, "cbevents-tail: CB_TOKEN_FILE %s: larger than %d bytes\n", path,
            CBEV_SECRET_FILE_MAX);
  else if (rc == CBEV_EPARSE)
    fprintf(stderr, "cbevents-tail: CB_TOKEN_FILE %s: empty or not text\n", path);
  else if (rc != CBEV_OK)
    fprintf(stderr, "cbevents-tail: CB_TOKEN_FILE %s: %s\n", path, cbev_strerror(rc));
  return token;
}

static int install_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: sleeps end early */
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
    return -1;
  sa.sa_handler = SIG_IGN;
  return sigaction(SIGPIPE, &sa, NULL);
}

/* Prints the events of b (flags: CBEV_JSON_*); returns 0, or -1 when
 * stdout is gone. */
static int print_batch(const cbev_batch *b, unsigned flags) {
  for (size_t i = 0; i < cbev_batch_count(b); i++) {
    char *json = NULL;
    size_t len = 0;
    int rc = cbev_event_to_json(cbev_batch_get(b, i), flags, &json, &len);
    if (rc != CBEV_OK) {
      fprintf(stderr, "cbevents-tail: error: cannot serialize event %s: %s\n",
              cbev_event_id(cbev_batch_get(b, i)), cbev_strerror(rc));
      return -1;
    }
    fwrite(json, 1, len, stdout);
    fputc('\n', stdout);
    cbev_free(json);
    if (fflush(stdout) != 0 || ferror(stdout))
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"testbed", no_argument, NULL, 'T'},     {"api", required_argument, NULL, 'a'},
      {"timeout", required_argument, NULL, 't'}, {"ca-file", required_argument, NULL, 'C'},
      {"rate", required_argument, NULL, 'r'},  {"retries", required_argument, NULL, 'R'},
      {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
      {"raw", no_argument, NULL, 'w'},
      {"expose-anonymous-tippers", no_argument, NULL, 'x'},
      {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0}};
  cbev_logger logger = {log_stderr, NULL, CBEV_LOG_WARN};
  cbev_client_config cfg;
  cbev_client *client = NULL;
  cbev_ratelimit *limiter = NULL;
  unsigned rate_n = CBEV_RATELIMIT_DEFAULT_REQUESTS;
  double rate_s = CBEV_RATELIMIT_DEFAULT_SECONDS;
  char *token = NULL;
  const char *events_url = getenv("CB_EVENTS_URL");
  unsigned json_flags = 0;
  int status = EXIT_USAGE, c, rc;
  long v;

  cbev_client_config_init(&cfg);
  cfg.stop_flag = &g_stop;
  cfg.session.logger = &logger;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'T':
      cfg.testbed = 1;
      break;
    case 'a':
      cfg.session.base_url = optarg;
      break;
    case 't':
      if (parse_int(optarg, 0, CBEV_MAX_TIMEOUT_S, &v)) {
        fprintf(stderr, "cbevents-tail: --timeout: must be a whole number from 0 to 90\n");
        goto out;
      }
      cfg.session.timeout_s = (int)v;
      break;
    case 'C':
      cfg.ca_file = optarg;
      break;
    case 'r':
      if (cbev_ratelimit_parse(optarg, &rate_n, &rate_s) != CBEV_OK) {
        fprintf(stderr, "cbevents-tail: --rate: expected N/SECONDS, e.g. 2000/60\n");
        goto out;
      }
      break;
    case 'R':
      if (parse_int(optarg, 0, 1000000, &v)) {
        fprintf(stderr, "cbevents-tail: --retries: must be a whole number >= 0\n");
        goto out;
      }
      cfg.session.retry_attempts = (int)v;
      break;
    case 'l':
      if (cbev_log_level_parse(optarg, &logger.max_level) != CBEV_OK) {
        fprintf(stderr, "cbevents-tail: --log-level: must be error, warn, info or debug\n");
        goto out;
      }
      break;
    case 'w':
      json_flags |= CBEV_JSON_RAW;
      break;
    case 'x':
      json_flags |= CBEV_JSON_EXPOSE_ANON;
      break;
    case 'h':
      usage(stdout);
      status = 0;
      goto out;
    case 'V':
      printf("cbevents-tail %s\n", cbev_version());
      status = 0;
      goto out;
    default:
      usage(stderr);
      goto out;
    }
  }
  if (cfg.testbed && cfg.session.base_url) {
    fprintf(stderr, "cbevents-tail: --testbed and --api exclude each other\n");
    goto out;
  }
  if (argc - optind > 1) {
    usage(stderr);
    goto out;
  }
  if (events_url && *events_url) {
    cfg.session.events_url = events_url;
    if (optind < argc)
      cfg.session.username = argv[optind];
  } else {
    const char *env_token = getenv("CB_TOKEN");
    const char *token_file = getenv("CB_TOKEN_FILE");
    if (optind >= argc) {
      fprintf(stderr, "cbevents-tail: USERNAME is required (or set CB_EVENTS_URL)\n");
      usage(stderr);
      goto out;
    }
    cfg.session.username = argv[optind];
    if (env_token && *env_token) {
      token = cbev_strdup(env_token);
    } else if (token_file && *token_file) {
      token = read_token_file(token_file);
      if (!token)
        goto out;
    } else {
      fprintf(stderr, "cbevents-tail: no token: set CB_TOKEN, CB_TOKEN_FILE or CB_EVENTS_URL\n");
      goto out;
    }
    if (!token) {
      fprintf(stderr, "cbevents-tail: out of memory\n");
      status = EXIT_RUNTIME;
      goto out;
    }
    cfg.session.token = token;
  }

  status = EXIT_RUNTIME;
  if (install_signals() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "cbevents-tail: cannot initialise signals or libcurl\n");
    goto out;
  }
  if (cbev_ratelimit_new(rate_n, rate_s, &limiter) != CBEV_OK)
    goto out;
  cfg.session.limiter = limiter;
  rc = cbev_client_new(&cfg, &client);
  if (rc != CBEV_OK) {
    /* The session has logged why; a bad URL or setting is a usage error. */
    status = (rc == CBEV_EINVAL || rc == CBEV_EURL) ? EXIT_USAGE : EXIT_RUNTIME;
    goto out;
  }
  for (;;) {
    cbev_batch *b = NULL;
    rc = cbev_client_poll(client, &b);
    if (rc != CBEV_OK)
      break;
    if (print_batch(b, json_flags) != 0) {
      cbev_batch_free(b);
      rc = CBEV_ECANCELED; /* stdout closed (e.g. `| head`): a normal end */
      break;
    }
    cbev_batch_free(b);
  }
  if (rc == CBEV_ECANCELED) {
    status = 0;
  } else {
    long http = 0;
    const char *excerpt = "";
    cbev_session *s = cbev_client_session(client);
    cbev_session_last_error(s, NULL, &http, &excerpt);
    if (http)
      cbev_log(&logger, cbev_session_token(s), CBEV_LOG_ERROR, "stopping: %s (HTTP %ld%s%s)",
               cbev_strerror(rc), http, *excerpt ? ": " : "", excerpt);
    else
      cbev_log(&logger, cbev_session_token(s), CBEV_LOG_ERROR, "stopping: %s", cbev_strerror(rc));
    status = rc == CBEV_EAUTH ? EXIT_AUTH : EXIT_RUNTIME;
  }
out:
  cbev_client_free(client);
  cbev_ratelimit_free(limiter);
  cbev_free(token);
  curl_global_cleanup();
  return status;
}
