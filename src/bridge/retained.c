/*
 * retained.c: see retained.h. The record has the shape of discovery.json
 * (discovery.h's record functions read and write it), with the base
 * topic in place of the discovery prefix.
 */
#include <stdlib.h>

#include "cbevents/error.h"
#include "discovery.h"
#include "retained.h"
#include "topics.h"

#define TOPIC_MAX 512

/* Every retained topic the bridge publishes for one broadcaster, as
 * levels under "<base>/<name>/". */
static const char *const LEVELS[] = {"availability",        "state",
                                     "state/broadcasting",  "state/subject",
                                     "state/session_tokens", "state/viewers",
                                     "health"};

/* The bridge's own retained topics, cleared when the base topic moved. */
static const char *const BRIDGE_LEVELS[] = {"status", "info", "health"};

static int clear_levels(const char *base, const char *name, const char *const *levels,
                        size_t n, cb2m_retained_publish_fn publish, void *ud) {
  char topic[TOPIC_MAX];
  int first = CBEV_OK;

  for (size_t i = 0; i < n; i++) {
    int rc = cb2m_topic(topic, sizeof topic, base, name, levels[i]) != CBEV_OK
                 ? CBEV_EINVAL
                 : publish(ud, topic, "", 0);
    if (rc != CBEV_OK && first == CBEV_OK)
      first = rc;
  }
  return first;
}

int cb2m_retained_clear(const char *base, const char *name, cb2m_retained_publish_fn publish,
                        void *ud) {
  return clear_levels(base, name, LEVELS, sizeof LEVELS / sizeof LEVELS[0], publish, ud);
}

int cb2m_retained_sync(const char *state_dir, const char *base, const char *const *names,
                       size_t n_names, cb2m_retained_publish_fn publish, void *ud,
                       const cbev_logger *logger) {
  cb2m_disc_record old = {0};
  const char **stale = NULL;
  size_t n_stale;
  int moved = 0, rc;

  /* The record only decides what to clear: losing it costs stale
   * retained topics, never a failed start. */
  rc = cb2m_disc_record_load_from(state_dir, CB2M_RETAINED_RECORD_FILE, &old);
  if (rc != CBEV_OK && rc != CBEV_ENOTFOUND)
    cbev_log(logger, NULL, CBEV_LOG_WARN,
             "retained: %s/%s unusable (%s); retained topics of removed broadcasters stay",
             state_dir, CB2M_RETAINED_RECORD_FILE, cbev_strerror(rc));
  if (rc == CBEV_ENOMEM)
    goto out;
  n_stale = cb2m_discovery_stale(&old, base, names, n_names, NULL, 0, &moved);
  rc = CBEV_ENOMEM;
  if (n_stale && !(stale = calloc(n_stale, sizeof *stale)))
    goto out;
  cb2m_discovery_stale(&old, base, names, n_names, stale, n_stale, NULL);
  rc = CBEV_OK;
  for (size_t i = 0; i < n_stale; i++) {
    int one = cb2m_retained_clear(old.prefix, stale[i], publish, ud);
    if (one == CBEV_OK)
      cbev_log(logger, NULL, CBEV_LOG_INFO,
               "retained: cleared the retained topics of removed broadcaster %s (%s/%s/...)",
               stale[i], old.prefix, stale[i]);
    else if (rc == CBEV_OK)
      rc = one;
  }
  if (moved && old.prefix) {
    int one = clear_levels(old.prefix, "bridge", BRIDGE_LEVELS,
                           sizeof BRIDGE_LEVELS / sizeof BRIDGE_LEVELS[0], publish, ud);
    if (rc == CBEV_OK)
      rc = one;
  }
  if (rc != CBEV_OK) {
    /* Not connected is routine: the next connect tries again. */
    cbev_log(logger, NULL, rc == CBEV_EAGAIN ? CBEV_LOG_DEBUG : CBEV_LOG_WARN,
             "retained: clearing removed broadcasters failed: %s; trying again after the next "
             "connect", cbev_strerror(rc));
    goto out;
  }
  rc = cb2m_disc_record_save_to(state_dir, CB2M_RETAINED_RECORD_FILE, base, names, n_names);
  if (rc != CBEV_OK)
    cbev_log(logger, NULL, CBEV_LOG_WARN,
             "retained: cannot write %s/%s (%s); removed broadcasters may keep retained topics",
             state_dir, CB2M_RETAINED_RECORD_FILE, cbev_strerror(rc));
out:
  free(stale);
  cb2m_disc_record_cleanup(&old);
  return rc;
}
