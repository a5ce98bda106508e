/*
 * config.h: cb2mqtt's settings: one table of keys (config.c) that the INI
 * file, the environment, the command line, validation, --print-config and
 * --help all read.
 *
 * Precedence, highest first: command line, environment, config file,
 * defaults. Every string in cb2m_config is owned by it and freed by
 * cb2m_config_free().
 */
#ifndef CB2M_CONFIG_H
#define CB2M_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "cbevents/log.h"

typedef struct cb2m_broadcaster_config {
  char *name;  /* validated: [A-Za-z0-9_-]{1,64}, not "bridge" */
  char *token; /* a secret; NULL when url is set */
  char *url;   /* the whole feed URL (a secret); NULL when token is set */
} cb2m_broadcaster_config;

typedef struct cb2m_config {
  struct {
    char *url;      /* as given */
    char *host;     /* parsed from url */
    int port;
    int tls;        /* mqtts:// */
    char *username;
    char *password; /* a secret */
    char *client_id;
    char *base_topic;
    int qos;
    int protocol; /* 5 or 311 */
    int keepalive;
    char *ca_file, *cert_file, *key_file;
    int tls_insecure;
    int health_interval; /* seconds between cb/bridge/health messages */
  } mqtt;
  struct {
    char *api;      /* production | testbed | base URL, as given */
    char *api_base; /* the resolved base URL */
    int timeout;
    double retry_backoff, retry_factor, retry_max_delay;
    char *rate_limit;
    unsigned rate_requests;
    double rate_seconds;
    int shared_rate_limit;
    char *ca_file;
    char *publish;
    unsigned publish_mask; /* bit (1u << cbev_event_type), UNKNOWN included for "all" */
    char *payload;
    int payload_raw;
    int expose_anonymous_tippers;
    char *state_dir;
    int max_queued;
  } events;
  struct {
    int discovery;
    char *prefix;
  } homeassistant;
  struct {
    char *level_name;
    cbev_log_level level;
    char *format;
    int json;
  } log;
  cb2m_broadcaster_config *broadcasters;
  size_t n_broadcasters;
  /* Command-line actions. */
  int help, version, check_config, print_config, healthcheck;
  char *config_file; /* the file read, NULL when none */
} cb2m_config;

/* Loads the settings from argv, envp (NULL-terminated "K=V" strings; never
 * getenv, so tests pass their own) and the config file. Returns 0, or 2
 * with err holding "config: <section>.<key>: <reason>" (or a usage
 * message). cfg is filled even on error and must be freed. */
int cb2m_config_load(cb2m_config *cfg, int argc, char **argv, char **envp, char *err,
                     size_t errlen);
void cb2m_config_free(cb2m_config *cfg);

/* The effective settings as INI, secrets printed as "***". Returns 0. */
int cb2m_config_print(const cb2m_config *cfg, FILE *out);
/* --help: usage, then every key with its default and help text. */
void cb2m_config_usage(FILE *out);
/* Settings without secrets, as JSON for cb/bridge/info (malloc'd). */
char *cb2m_config_info_json(const cb2m_config *cfg);

#endif
