#!/usr/bin/env python3
"""cb2mqtt end to end: retained clean-up of removed broadcasters at start
(SPEC 5, Topics).

Run with alice and bob, stop, run with alice only: a fresh subscriber sees
none of bob's retained topics (availability, state, state/*) nor his Home
Assistant config; alice's are there. The record in state_dir names the
broadcasters and holds no token.
"""

import os
import time

import cbtest

TOKEN_A = "tokAlice-0123456789abcdef"
TOKEN_B = "tokBob-fedcba9876543210"

user = cbtest.api_user
event = cbtest.api_event


def retained_now(broker, topics=("cb/#", "homeassistant/#"), settle=1.5):
    """What a fresh subscriber gets: the retained messages, by topic."""
    sub = cbtest.Subscriber(broker, topics=topics, qos=1).start()
    time.sleep(settle)
    sub.stop()
    return {m.topic: m for m in sub.messages() if m.retained}


def test_removed_broadcaster_cleared_at_start():
    state_dir = cbtest.tempdir("cbtest-state-")
    broker = cbtest.Mosquitto().start()
    api = cbtest.FakeApiProcess(["--max-wait", "1", "--broadcaster", "alice:" + TOKEN_A,
                                 "--broadcaster", "bob:" + TOKEN_B])
    cbtest.on_cleanup(api.stop)
    for name in ("alice", "bob"):
        api.control.add_events(name, [event("broadcastStart", b=name, user=user(name)),
                                       event("roomSubjectChange", b=name,
                                             subject="hi " + name)])
    extra = {"CB2MQTT_HOMEASSISTANT_DISCOVERY": "true"}
    both = (("alice", TOKEN_A), ("bob", TOKEN_B))
    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, both, extra)
    bridge = cbtest.start_bridge(env)
    cbtest.wait_until(lambda: {"cb/alice/state/subject", "cb/bob/state/subject"}
                      <= set(retained_now(broker, settle=0.5)), timeout=20,
                      what="both broadcasters' retained state")
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()
    before = retained_now(broker)
    bob_before = [t for t in before if t.startswith("cb/bob/")]
    assert "cb/bob/availability" in bob_before and "cb/bob/state" in bob_before, before.keys()
    assert "homeassistant/device/cb2mqtt_bob/config" in before, before.keys()

    env = cbtest.bridge_env(broker.url, api.base_url, state_dir, (("alice", TOKEN_A),), extra)
    bridge = cbtest.start_bridge(env)
    cbtest.wait_until(lambda: "cleared the retained topics of removed broadcaster bob"
                      in bridge.stderr_text(), timeout=20, what="the clean-up log line")
    cbtest.wait_until(lambda: retained_now(broker, settle=0.5).get("cb/alice/availability")
                      and retained_now(broker, settle=0.5)["cb/alice/availability"].text
                      == "online", timeout=10, what="alice online")
    after = retained_now(broker)
    bob_after = [t for t in after if "bob" in t]
    assert bob_after == [], bob_after
    for t in ("cb/alice/availability", "cb/alice/state", "cb/alice/state/subject",
              "homeassistant/device/cb2mqtt_alice/config", "cb/bridge/status"):
        assert t in after, (t, sorted(after))
    assert after["cb/alice/state/subject"].text == "hi alice"

    # The record names the broadcasters and holds no secret.
    with open(os.path.join(state_dir, "retained.json"), encoding="utf-8") as f:
        record = f.read()
    assert '"alice"' in record and "bob" not in record, record
    for tok in (TOKEN_A, TOKEN_B):
        for form in cbtest.secret_forms(tok):
            assert form not in record
    bridge.stop()
    assert bridge.returncode == 0, bridge.describe()


if __name__ == "__main__":
    cbtest.run([test_removed_broadcaster_cleared_at_start])
