/*
 * bridge_deliver.c: the way of an event through the bridge. A poll's
 * batch is applied to the derived state and queued; queued events are
 * handed to MQTT in turn across broadcasters within the in-flight window;
 * an ack moves the queue's acknowledged prefix out and makes its cursor
 * due for saving (bridge_save.c); a refusal holds the queue and retries
 * with backoff. See bridge_impl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "bridge_impl.h"
#include "cursor.h"
#include "route.h"

/* Events handed to libmosquitto and not yet acknowledged, across all
 * broadcasters, are at most the MQTT client's in-flight window (the
 * bridge leaves mo.max_inflight 0): more would only wait inside
 * libmosquitto, and this bounds the memory it holds for us. */
_Static_assert(CB2M_MQTT_DEFAULT_INFLIGHT * 4 <= CB2M_MIDMAP_SLOTS,
               "midmap probe runs stay short");
/* A broadcaster's refused publishes are logged at most this often. */
#define REFUSAL_LOG_INTERVAL_MS 60000u
/* Consecutive failed polls after which a broadcaster is shown offline. */
#define UNAVAILABLE_AFTER_FAILURES 3u

/* Holds broadcaster i's queue for its refused item seq (queue.h: re-sent
 * after the backoff, later events wait behind it) and logs the refusal,
 * at most once a minute per broadcaster. why names the cause: the
 * broker's reason code, or the MQTT module's error. */
static void refused(bridge *b, uint32_t i, uint64_t seq, int reason_code, const char *why,
                    uint64_t now) {
  bc *c = &b->bcs[i];
  cb2m_item *it = cb2m_queue_refuse(&c->queue, seq, now);
  char more[64] = "";

  if (!it)
    return; /* an earlier refusal or a reconnect took it back already */
  c->mx.publish_refused++;
  snprintf(c->publish_error.topic, sizeof c->publish_error.topic, "%s", it->topic);
  snprintf(c->publish_error.reason, sizeof c->publish_error.reason, "%s", why);
  c->publish_error.reason_code = reason_code;
  c->publish_error.at = time(NULL);
  if (c->refusal_logged_ms && now - c->refusal_logged_ms < REFUSAL_LOG_INTERVAL_MS) {
    c->refusals_unlogged++;
    return;
  }
  if (c->refusals_unlogged)
    snprintf(more, sizeof more, " (%lu more refusals since the last message)",
             c->refusals_unlogged);
  LOG(b, CBEV_LOG_ERROR,
      "%s: publish of event %s to %s refused: %s; sending it again in %.0f s, later events of "
      "%s wait behind it%s",
      c->cfg->name, it->id, it->topic, why,
      (double)cb2m_queue_retry_delay_ms(c->queue.refusals) / 1000.0, c->cfg->name, more);
  c->refusal_logged_ms = now;
  c->refusals_unlogged = 0;
}

/* Hands the next event of broadcaster i that may go out now to MQTT.
 * Returns 1 when one was published, 0 when i has none ready, -1 when MQTT
 * takes nothing now (not connected any more): the item stays queued and
 * goes out after the next connect. */
static int pump_one(bridge *b, uint32_t i, uint64_t now) {
  bc *c = &b->bcs[i];
  cb2m_item *it;
  uint64_t seq;
  int mid = 0, rc;

  while ((it = cb2m_queue_next_unsent(&c->queue, now)) != NULL && !it->topic)
    cb2m_queue_mark_sent(&c->queue); /* filtered out: passes as done */
  if (!it)
    return 0;
  rc = cb2m_mqtt_publish(b->mqtt, it->topic, it->payload, it->len, b->cfg->mqtt.qos, 0, &mid);
  if (rc == CBEV_EAGAIN)
    return -1;
  seq = cb2m_queue_mark_sent(&c->queue);
  if (rc == CBEV_OK && cb2m_midmap_put(&b->midmap, mid, i, seq) == CBEV_OK)
    return 1;
  /* Refused before reaching the broker (a payload over the broker's
   * packet size, out of memory; or an id the map cannot hold): retried
   * like a broker's refusal, so nothing is dropped and order holds. */
  refused(b, i, seq, -1, rc == CBEV_OK ? "its message id cannot be tracked" : cbev_strerror(rc),
          now);
  return 0;
}

/* Hands queued events to MQTT while the connection, the in-flight budget
 * and the socket allow, one event per broadcaster in turn, so that after
 * an outage one broadcaster's backlog never holds back the others. Once
 * the socket is full each publish would retry the write in vain (half the
 * write calls of a fast run failed with EAGAIN), so the rest waits for the
 * socket to drain. */
void bridge_pump(bridge *b) {
  uint64_t now = cbev_now_ms();
  size_t idle = 0; /* broadcasters in a row with nothing ready */

  if (!cb2m_mqtt_connected(b->mqtt) || b->n == 0)
    return;
  while (idle < b->n && b->midmap.count < CB2M_MQTT_DEFAULT_INFLIGHT &&
         !cb2m_mqtt_backlogged(b->mqtt)) {
    uint32_t i = (uint32_t)b->next_pump;
    int r = pump_one(b, i, now);
    if (r < 0)
      return; /* i keeps its turn */
    b->next_pump = (i + 1) % b->n;
    idle = r ? 0 : idle + 1;
  }
}

/* The earliest time a refused publish is due again; UINT64_MAX for none. */
uint64_t bridge_retry_due_ms(const bridge *b) {
  uint64_t due = UINT64_MAX;

  for (size_t i = 0; i < b->n; i++) {
    uint64_t t = cb2m_queue_retry_ms(&b->bcs[i].queue);
    if (t < due)
      due = t;
  }
  return due;
}

/* Moves acknowledged prefixes out of the queues; their cursors become due
 * for saving. Also resumes polling of broadcasters whose queue drained. */
void bridge_collect_acked(bridge *b) {
  for (size_t i = 0; i < b->n; i++) {
    bc *c = &b->bcs[i];
    char *url = NULL, *id = NULL;
    int was_full = cb2m_queue_full(&c->queue);
    size_t n = cb2m_queue_pop_done(&c->queue, &url, &id);
    if (n == 0 || n == (size_t)-1)
      continue;
    free(c->cursor_url);
    c->cursor_url = url;
    /* Only an event id moves the last delivered id (SPEC 3). */
    if (id) {
      free(c->cursor_id);
      c->cursor_id = id;
    }
    if (was_full && !cb2m_queue_full(&c->queue)) {
      LOG(b, CBEV_LOG_INFO, "%s: queue below %zu again, polling resumes", c->cfg->name,
          c->queue.max_items);
      cb2m_poller_kick(b->poller);
    }
  }
}

void bridge_on_disconnect(void *ud) {
  bridge *b = ud;

  /* The MQTT module forgets unacknowledged messages with the connection;
   * they go out again, in order, after the next connect. */
  for (size_t i = 0; i < b->n; i++)
    cb2m_queue_unsend_all(&b->bcs[i].queue);
  cb2m_midmap_clear(&b->midmap);
}

void bridge_on_ack(void *ud, int mid, int reason) {
  bridge *b = ud;
  uint32_t i;
  uint64_t seq;
  bc *c;

  if (!cb2m_midmap_take(&b->midmap, mid, &i, &seq))
    return; /* a retained state message */
  c = &b->bcs[i];
  if (reason >= 0x80) {
    char why[96];
    snprintf(why, sizeof why, "reason code 0x%02x (%s)", (unsigned)reason,
             mosquitto_reason_string(reason));
    refused(b, i, seq, reason, why, cbev_now_ms());
    return;
  }
  {
    const cb2m_item *it = cb2m_queue_sent_item(&c->queue, seq);
    uint64_t now = cbev_now_ms();
    if (it) {
      c->mx.published++;
      cb2m_histogram_observe(&b->mx.delivery,
                             it->fetch && now > it->fetch->fetched_ms ? now - it->fetch->fetched_ms
                                                                      : 0);
    }
  }
  if (seq == c->queue.held_seq) {
    unsigned tries = c->queue.refusals;
    if (cb2m_queue_ack(&c->queue, seq) == CBEV_OK)
      LOG(b, CBEV_LOG_INFO, "%s: the refused publish was accepted after %u refusal(s); the "
          "events behind it follow", c->cfg->name, tries);
    return;
  }
  cb2m_queue_ack(&c->queue, seq);
}

int bridge_poll_allowed(void *ud, size_t i) {
  bridge *b = ud;
  bc *c = &b->bcs[i];
  return !b->stopping && (c->status != BC_AUTH_FAILED || c->auth_retry) &&
         !cb2m_queue_full(&c->queue);
}

/* Queues a batch's events, after the derived state and the counters saw
 * each one (filtered events too). Returns CBEV_OK, or the cbev_error code
 * of an event that could not be queued (logged here, naming its cause);
 * what was queued before it stays queued. */
static int enqueue_batch(bridge *b, bc *c, cbev_batch *batch, const char *request_url) {
  size_t n = cbev_batch_count(batch);
  cb2m_route route = {b->cfg->mqtt.base_topic, c->cfg->name, b->cfg->events.publish_mask,
                      (b->cfg->events.payload_raw ? CBEV_JSON_RAW : 0) |
                          (b->cfg->events.expose_anonymous_tippers ? CBEV_JSON_EXPOSE_ANON : 0)};
  cb2m_fetch *fetch;
  int rc = CBEV_ENOMEM;

  if (n == 0) {
    /* An empty batch moves the cursor; save it once nothing is pending. */
    if (c->queue.count == 0 && cbev_session_cursor_url(c->session) &&
        cbev_session_last_id(c->session)) {
      free(c->cursor_url);
      free(c->cursor_id);
      c->cursor_url = strdup(cbev_session_cursor_url(c->session));
      c->cursor_id = strdup(cbev_session_last_id(c->session));
    }
    return CBEV_OK;
  }
  fetch = cb2m_fetch_new(request_url, cbev_batch_next_url(batch));
  if (!fetch) {
    LOG(b, CBEV_LOG_ERROR, "%s: cannot queue a batch of %zu events: %s", c->cfg->name, n,
        cbev_strerror(rc));
    return rc;
  }
  /* One batch, one moment: both clocks are read once for all its events. */
  fetch->fetched_ms = cbev_now_ms();
  c->last_event_ms = fetch->fetched_ms;
  c->mx.last_event_unix_ms = bridge_wall_ms();
  for (size_t i = 0; i < n; i++) {
    const cbev_event *ev = cbev_batch_get(batch, i);
    cbev_event_type type = cbev_event_get_type(ev);
    unsigned changed = 0;

    if (cb2m_state_apply(&c->state, ev, b->cfg->events.expose_anonymous_tippers, &changed) == 0 &&
        changed) {
      c->state_changed |= changed;
      c->state_unsaved = 1;
      /* A start and a stop in one batch must both show on the retained
       * topics (automations trigger on the edge), so a broadcasting change
       * goes out now; other fields are coalesced per batch. */
      if (changed & CB2M_CHG_BROADCASTING)
        bridge_publish_state(b, c, c->state_changed);
    }
    c->mx.events_by_type[type]++;
    if (type == CBEV_EVENT_TIP && cbev_event_tip(ev) && cbev_event_tip(ev)->has_tokens &&
        cbev_event_tip(ev)->tokens > 0)
      c->mx.tip_tokens += (uint64_t)cbev_event_tip(ev)->tokens;
    rc = cb2m_route_push(&route, ev, &c->queue, fetch, i + 1 == n);
    if (rc != CBEV_OK) {
      LOG(b, CBEV_LOG_ERROR, "%s: cannot queue event %s: %s", c->cfg->name, cbev_event_id(ev),
          cbev_strerror(rc));
      goto out;
    }
  }
  rc = CBEV_OK;
out:
  cb2m_fetch_unref(fetch);
  return rc;
}

static void set_status(bridge *b, bc *c, bc_status st) {
  c->status = st;
  bridge_publish_availability(b, c, st == BC_ONLINE);
}

void bridge_on_poll_done(void *ud, size_t i, int rc, cbev_batch *batch, const char *request_url) {
  bridge *b = ud;
  bc *c = &b->bcs[i];
  long status = 0;

  c->mx.polls++;
  if (rc == CBEV_OK) {
    c->failures = 0;
    c->auth_retry = 0;
    b->any_good = 1;
    if (c->status != BC_ONLINE) {
      LOG(b, CBEV_LOG_INFO, "%s: polling the Events API", c->cfg->name);
      set_status(b, c, BC_ONLINE);
    }
    if (enqueue_batch(b, c, batch, request_url) != CBEV_OK) {
      /* Only memory or settings can fail it (route.h), never an event's
       * content. The cursor file still points before this batch, so a
       * restart fetches it again: stop rather than lose it. */
      LOG(b, CBEV_LOG_ERROR, "%s: stopping; the next start fetches the batch again",
          c->cfg->name);
      b->fatal = 1;
    }
    cbev_batch_free(batch);
    if (c->state_changed)
      bridge_publish_state(b, c, c->state_changed);
    return;
  }
  cbev_session_last_error(c->session, &c->last_error_rc, &status, NULL);
  c->last_error_status = status;
  c->mx.poll_errors[cb2m_poll_reason_of(c->last_error_rc ? c->last_error_rc : rc)]++;
  c->failures++;
  switch (rc) {
  case CBEV_EAUTH:
    LOG(b, CBEV_LOG_ERROR,
        "%s: authentication failed (HTTP %ld): the token is wrong, revoked or lacks the "
        "Events API scope; offline, trying again in %d s%s", c->cfg->name, status,
        b->cfg->events.auth_retry_interval,
        c->cfg->secret_file ? " (its secret file is read again first)" : "");
    set_status(b, c, BC_AUTH_FAILED);
    c->auth_retry = 0;
    c->auth_retry_at_ms = cbev_now_ms() + (uint64_t)b->cfg->events.auth_retry_interval * 1000u;
    break;
  case CBEV_EURL:
  case CBEV_EHTTP:
    /* The session logged the details and scheduled a retry with backoff. */
    set_status(b, c, BC_FAILING);
    break;
  default:
    if (c->failures >= UNAVAILABLE_AFTER_FAILURES && c->status != BC_FAILING)
      set_status(b, c, BC_FAILING);
    break;
  }
}
