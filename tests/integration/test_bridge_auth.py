#!/usr/bin/env python3
"""cb2mqtt and authentication failures (issue 11, the bridge's part), with
the fake Events API, a real mosquitto and the bridge:

- a 401 and a 403 on its only broadcaster, after it got good answers: the
  bridge survives both and delivers what follows;
- a token revoked at the API while the bridge runs: the broadcaster goes
  offline (availability, and the health message shows the auth error), the
  bridge keeps running; writing the new token into its token_file, url_file
  or systemd credential brings it back within events.auth_retry_interval
  (10 s here) with nothing lost, the new token used from then on, and no
  token in any log line or message;
- exit 3 only at start, when the only broadcaster's token is refused before
  any good answer.
"""

import json
import os
import time

import cbtest

NAME = "alice"
OLD = "authOldTok-1a2b3c/x+y"
NEW = "authNewTok-9z8y7x/w+v"
RETRY_S = 10  # the minimum of events.auth_retry_interval


def tip(tokens):
    return cbtest.api_event("tip", NAME, user=cbtest.api_user("bob"),
                            tip={"tokens": tokens, "isAnon": False, "message": ""})


class Rig:
    """way: where the secret lives, "token_file", "url_file" (the feed URL)
    or "credential" (systemd's $CREDENTIALS_DIRECTORY/cb_token_alice)."""

    def __init__(self, way="token_file"):
        self.way = way
        self.api = cbtest.fake_api({NAME: OLD}, max_wait=0.5)
        self.broker = cbtest.Mosquitto().start()
        cbtest.on_cleanup(self.broker.stop)
        self.sub = cbtest.Subscriber(self.broker, topics=("cb/#",), qos=1).start()
        cbtest.on_cleanup(self.sub.stop)
        self.state_dir = cbtest.tempdir("cbtest-state-")
        self.conf_dir = cbtest.tempdir("cbtest-conf-")
        if way == "credential":
            os.mkdir(os.path.join(self.conf_dir, "creds"))
            self.token_file = os.path.join(self.conf_dir, "creds", "cb_token_" + NAME)
        else:
            self.token_file = os.path.join(self.conf_dir, "secret")
        self.write_token(OLD)
        self.bridge = None

    def write_token(self, token):
        tmp = self.token_file + ".tmp"
        with open(tmp, "w") as f:
            f.write((self.api.feed_url(NAME, token) if self.way == "url_file" else token) + "\n")
        os.replace(tmp, self.token_file)

    def start(self, **extra):
        env = cbtest.bridge_env(self.broker.url, self.api.base_url, self.state_dir, [], {
            "CB2MQTT_BROADCASTERS": NAME,
            "CB2MQTT_EVENTS_AUTH_RETRY_INTERVAL": str(RETRY_S),
            "CB2MQTT_MQTT_HEALTH_INTERVAL": "5",
        })
        if self.way == "credential":
            env["CREDENTIALS_DIRECTORY"] = os.path.dirname(self.token_file)
        else:
            env["CB2MQTT_BROADCASTER_ALICE_%s" % self.way.upper()] = self.token_file
        env.update(extra)
        self.bridge = cbtest.start_bridge(env)
        return self.bridge

    def delivered(self):
        return [m.json()["id"] for m in self.sub.messages("cb/%s/tip" % NAME)]

    def wait_delivered(self, ids, timeout=20):
        cbtest.wait_until(lambda: set(ids) <= set(self.delivered()) or not self.bridge.alive(),
                          timeout, what="events %s..%s delivered" % (ids[0], ids[-1]))
        assert self.bridge.alive(), self.bridge.describe()

    def availability(self):
        msgs = self.sub.messages("cb/%s/availability" % NAME)
        return msgs[-1].text if msgs else None

    def assert_no_token_anywhere(self):
        for tok in (OLD, NEW):
            cbtest.assert_no_secret(self.bridge.stderr_text(), tok, "the bridge's log")
            cbtest.assert_no_secret_in_messages(self.sub.messages(), tok)


def test_survives_401_and_403():
    rig = Rig()
    first = rig.api.add_events(NAME, [tip(1)])
    rig.start()
    rig.wait_delivered(first)
    for status, n in ((401, 2), (403, 3)):
        rig.api.add_faults(NAME, [{"status": status}])
        cbtest.wait_until(lambda: any(r["status"] == status for r in
                                      rig.api.event_requests(NAME)), 10,
                          what="the %d served" % status)
        ids = rig.api.add_events(NAME, [tip(n)])
        # Retried by the session (auth_retries), or at the latest after
        # auth_retry_interval by the bridge: never the end of it.
        rig.wait_delivered(ids, timeout=RETRY_S + 15)
    assert rig.bridge.stop() == 0, rig.bridge.describe()
    assert sorted(rig.delivered()) == sorted(set(rig.delivered())), "an event came twice"
    rig.assert_no_token_anywhere()


def revoked_then_rotated(way):
    rig = Rig(way)
    first = rig.api.add_events(NAME, [tip(1), tip(2)])
    bridge = rig.start()
    rig.wait_delivered(first)
    cbtest.wait_until(lambda: rig.availability() == "online", 10, what="online")
    # Revoked upstream: every request with the old token now gets a 401.
    rig.api.set_broadcaster(NAME, NEW)
    cbtest.wait_until(lambda: rig.availability() == "offline" or not bridge.alive(), 30,
                      what="offline after the revocation")
    assert bridge.alive(), bridge.describe()
    meanwhile = rig.api.add_events(NAME, [tip(3), tip(4)])

    def auth_error_in_health(m):
        if m.topic != "cb/%s/health" % NAME:
            return False
        err = m.json().get("last_api_error") or {}
        return err.get("http_status") == 401 and "authentication" in err.get("error", "")
    rig.sub.wait_for(auth_error_in_health, timeout=15, what="the auth error in the health")
    assert not set(meanwhile) & set(rig.delivered())
    # Tried again after auth_retry_interval with the old token: still
    # offline, still running.
    n_401 = len([r for r in rig.api.event_requests(NAME) if r["status"] == 401])
    cbtest.wait_until(lambda: len([r for r in rig.api.event_requests(NAME)
                                   if r["status"] == 401]) > n_401, RETRY_S + 10,
                      what="a try after auth_retry_interval")
    assert bridge.alive() and rig.availability() == "offline", bridge.describe()
    # The operator writes the new token: back within auth_retry_interval.
    since = len(rig.api.requests())
    rig.write_token(NEW)
    t0 = time.monotonic()
    rig.wait_delivered(meanwhile, timeout=RETRY_S + 10)
    took = time.monotonic() - t0
    assert took <= RETRY_S + 3, "back after %.1f s" % took
    cbtest.wait_until(lambda: rig.availability() == "online", 5, what="online again")
    later = rig.api.add_events(NAME, [tip(5)])
    rig.wait_delivered(later)
    assert bridge.stop() == 0, bridge.describe()
    reqs = [r for r in rig.api.requests(NAME, since) if r["kind"] == "events"]
    ok = [r for r in reqs if r["token"] == NEW]
    assert ok, "the new token was never sent"
    first_new = reqs.index(ok[0])
    assert all(r["token"] == NEW for r in reqs[first_new:]), "the old token was sent again"
    assert sorted(rig.delivered()) == sorted(first + meanwhile + later), rig.delivered()
    rig.assert_no_token_anywhere()
    with open(os.path.join(rig.state_dir, NAME + ".cursor")) as f:
        assert json.load(f)["last_id"] == later[-1]


def test_exit_3_only_at_start():
    rig = Rig()
    rig.write_token("wrongTok-000")
    bridge = rig.start()
    rc = bridge.wait(30)
    assert rc == 3, bridge.describe()
    assert "every broadcaster failed authentication" in bridge.stderr_text()


def rotation_test(way):
    def test():
        revoked_then_rotated(way)
    test.__name__ = "test_revoked_token_then_rotated_in_" + way
    return test


if __name__ == "__main__":
    cbtest.run([test_survives_401_and_403] +
               [rotation_test(w) for w in ("token_file", "url_file", "credential")] +
               [test_exit_3_only_at_start])
