#!/usr/bin/env python3
"""cb2mqtt never logs a broadcaster's token, however it was configured
(issue 15): token, token_file, url, url_file, CB_EVENTS_URL, CB_TOKEN and
systemd credentials. Each run logs at debug level, delivers an event and
gets an error body that echoes the feed URL; no form of the token (raw,
percent-encoded in upper or lower case) may appear in the log or in any
MQTT message.
"""

import os
import signal
import urllib.parse

import cbtest

TOKEN = "secTok+9=x~y.z"


def run_one(rig, how):
    d = cbtest.tempdir("cbtest-secret-")
    feed = "%s/alice/%s/" % (rig.api.base_url, urllib.parse.quote(TOKEN, safe=""))
    env = cbtest.bridge_env(rig.broker.url, rig.api.base_url, cbtest.tempdir("cbtest-state-"),
                            [("alice", TOKEN)])
    del env["CB2MQTT_BROADCASTER_ALICE_TOKEN"]
    if how == "token":
        env["CB2MQTT_BROADCASTER_ALICE_TOKEN"] = TOKEN
    elif how == "token_file":
        path = os.path.join(d, "tok")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        env["CB2MQTT_BROADCASTER_ALICE_TOKEN_FILE"] = path
    elif how == "url":
        env["CB2MQTT_BROADCASTER_ALICE_URL"] = feed
    elif how == "url_file":
        path = os.path.join(d, "url")
        with open(path, "w") as f:
            f.write(feed + "\n")
        env["CB2MQTT_BROADCASTER_ALICE_URL_FILE"] = path
    elif how == "CB_EVENTS_URL":
        del env["CB2MQTT_BROADCASTERS"]
        env["CB_EVENTS_URL"] = feed
    elif how == "CB_TOKEN":
        del env["CB2MQTT_BROADCASTERS"]
        env.update({"CB_USERNAME": "alice", "CB_TOKEN": TOKEN})
    elif how == "credentials":
        del env["CB2MQTT_BROADCASTERS"]
        creds = os.path.join(d, "creds")
        os.mkdir(creds, 0o700)
        with open(os.path.join(creds, "cb_token"), "w") as f:
            f.write(TOKEN + "\n")
        env.update({"CB_USERNAME": "alice", "CREDENTIALS_DIRECTORY": creds})
    rig.sub.clear()
    # An error body quoting the URL with the token, then an event.
    rig.api.control.add_faults("alice", [
        {"status": 500, "body": '{"status": "bad %s and %s"}' % (feed, TOKEN)}])
    ids = rig.api.control.add_events("alice", [cbtest.api_event("follow")])
    bridge = cbtest.start_bridge(env, name="cb2mqtt-" + how)
    try:
        rig.sub.wait_for(lambda m: m.topic == "cb/alice/follow" and m.json()["id"] == ids[0],
                         timeout=30, what="the event (%s)" % how)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, bridge.describe()))
    assert bridge.stop(signal.SIGTERM) == 0, bridge.describe()
    log = bridge.stderr_text() + bridge.stdout_text()
    assert " debug " in log and "500" in log, log[-2000:]  # the fault was served
    cbtest.assert_no_secret(log, TOKEN, "the bridge's log (%s)" % how)
    cbtest.assert_no_secret_in_messages(rig.sub.messages(), TOKEN)


class Rig:
    def __init__(self):
        self.broker = cbtest.Mosquitto().start()
        cbtest.on_cleanup(self.broker.stop)
        self.api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster",
                                          "alice:%s" % TOKEN])
        cbtest.on_cleanup(self.api.stop)
        self.sub = cbtest.Subscriber(self.broker, topics=("#",), qos=1).start()
        cbtest.on_cleanup(self.sub.stop)


def test_token_never_logged_whatever_its_source():
    rig = Rig()
    for how in ("token", "token_file", "url", "url_file", "CB_EVENTS_URL", "CB_TOKEN",
                "credentials"):
        run_one(rig, how)


if __name__ == "__main__":
    cbtest.run([test_token_never_logged_whatever_its_source])
