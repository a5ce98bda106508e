/*
 * cb2mqtt: republishes Chaturbate Events API feeds to MQTT.
 *
 * main() only turns the settings into a running bridge: it loads and
 * checks the configuration (exit 2 on any problem, before connecting),
 * answers --help/--version/--check-config/--print-config/--healthcheck,
 * makes sure state_dir is usable (exit 1 otherwise), installs the signal
 * handlers and runs the loop in bridge.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mosquitto.h>

#include "bridge.h"
#include "cbevents/cbevents.h"
#include "config.h"
#include "fsutil.h"
#include "heartbeat.h"

extern char **environ;

static volatile sig_atomic_t g_stop, g_reload;
static int g_signal_pipe[2] = {-1, -1};

/* Only async-signal-safe work here: a flag and a byte into the pipe that
 * wakes the poll loop. SIGHUP asks for a reload, the others to stop. */
static void on_signal(int sig) {
  int saved = errno;
  char c = (char)sig;
  if (sig == SIGHUP)
    g_reload = 1;
  else
    g_stop = 1;
  if (g_signal_pipe[1] >= 0 && write(g_signal_pipe[1], &c, 1) < 0) {
    /* The pipe is full: the loop is already awake. */
  }
  errno = saved;
}

static int install_signals(void) {
  struct sigaction sa;

  if (pipe(g_signal_pipe) != 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(g_signal_pipe[i], F_SETFL, fcntl(g_signal_pipe[i], F_GETFL) | O_NONBLOCK);
    fcntl(g_signal_pipe[i], F_SETFD, FD_CLOEXEC);
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
      sigaction(SIGHUP, &sa, NULL))
    return -1;
  sa.sa_handler = SIG_IGN;
  return sigaction(SIGPIPE, &sa, NULL);
}

/* The command line, kept for a reload (SIGHUP): the same sources are
 * read again by the same loader. */
typedef struct reload_args {
  int argc;
  char **argv;
} reload_args;

static int reload_config(void *ud, cb2m_config *out, char *err, size_t errlen) {
  const reload_args *a = ud;
  return cb2m_config_load(out, a->argc, a->argv, environ, err, errlen);
}

int main(int argc, char **argv) {
  cb2m_config cfg;
  char err[512] = "";
  int status;

  status = cb2m_config_load(&cfg, argc, argv, environ, err, sizeof err);
  if (status != 0) {
    fprintf(stderr, "%s\n", err[0] ? err : "config: invalid settings");
    fprintf(stderr, "Try 'cb2mqtt --help'.\n");
    cb2m_config_free(&cfg);
    return CB2M_EXIT_CONFIG;
  }
  if (cfg.help) {
    cb2m_config_usage(stdout);
    status = CB2M_EXIT_OK;
    goto out;
  }
  if (cfg.version) {
    printf("cb2mqtt %s (libcbevents %s, %s, libmosquitto %d.%d.%d)\n", CBEV_VERSION,
           cbev_version(), curl_version(), LIBMOSQUITTO_MAJOR, LIBMOSQUITTO_MINOR,
           LIBMOSQUITTO_REVISION);
    status = CB2M_EXIT_OK;
    goto out;
  }
  if (cfg.healthcheck) {
    char why[256] = "";
    status = cb2m_heartbeat_check(cfg.events.state_dir, time(NULL), CB2M_HEARTBEAT_MAX_AGE_S,
                                  why, sizeof why);
    fprintf(status ? stderr : stdout, "%s\n", why[0] ? why : (status ? "unhealthy" : "healthy"));
    status = status ? 1 : 0;
    goto out;
  }
  if (cfg.print_config) {
    cb2m_config_print(&cfg, stdout);
    status = CB2M_EXIT_OK;
    goto out;
  }
  if (cfg.check_config) {
    printf("config: OK (%zu broadcaster(s))\n", cfg.n_broadcasters);
    status = CB2M_EXIT_OK;
    goto out;
  }
  if (cb2m_ensure_dir(cfg.events.state_dir) != 0) {
    fprintf(stderr, "cb2mqtt: state_dir %s: not writable: %s; exiting\n", cfg.events.state_dir,
            strerror(errno));
    status = CB2M_EXIT_FATAL;
    goto out;
  }
  if (install_signals() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
    fprintf(stderr, "cb2mqtt: cannot initialise signals, libcurl or libmosquitto; exiting\n");
    status = CB2M_EXIT_FATAL;
    goto out;
  }
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  {
    reload_args ra = {argc, argv};
    cb2m_bridge_hooks hooks = {&g_stop, &g_reload, reload_config, &ra, g_signal_pipe[0]};
    status = cb2m_bridge_run(&cfg, &hooks);
  }
  mosquitto_lib_cleanup();
  curl_global_cleanup();
out:
  cb2m_config_free(&cfg);
  return status;
}
